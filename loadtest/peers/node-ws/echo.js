// Node `ws` echo server: the comparison peer for the echo benchmark (Debian's node-ws).
// Usage: NODE_PATH=/usr/share/nodejs node echo.js PORT
const { WebSocketServer } = require('ws');
const port = Number(process.argv[2] || 9100);
const wss = new WebSocketServer({ port, host: '127.0.0.1', perMessageDeflate: false, path: '/echo' });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
wss.on('listening', () => console.log(`node-ws echo listening on 127.0.0.1:${port}`));
