// Node `ws` rooms server: the comparison peer for the fan-out benchmark. A client connects to
// /ws?session=ROOM, sends JSON messages; each is parsed, tagged with the sender and re-serialised once,
// then sent to every other member of the room (what CollabHub does with an ephemeral app event).
// A {"type":"join"} is answered with {"type":"joined"} so the same load generator drives both.
// Usage: NODE_PATH=/usr/share/nodejs node rooms.js PORT
const { WebSocketServer } = require('ws');
const port = Number(process.argv[2] || 9110);
const rooms = new Map();
let nextId = 0;
const wss = new WebSocketServer({ port, host: '127.0.0.1', perMessageDeflate: false });
wss.on('connection', (ws, req) => {
  const room = new URL(req.url, 'http://x').searchParams.get('session') || 'default';
  const id = 'm' + (nextId++);
  if (!rooms.has(room)) rooms.set(room, new Set());
  const members = rooms.get(room);
  members.add(ws);
  ws.on('message', (data) => {
    let m;
    try { m = JSON.parse(data); } catch { return; }
    if (m.type === 'join') { ws.send(JSON.stringify({ type: 'joined', you: { id } })); return; }
    m.from = id;
    const out = JSON.stringify(m);
    for (const peer of members) if (peer !== ws && peer.readyState === 1) peer.send(out);
  });
  ws.on('close', () => { members.delete(ws); if (members.size === 0) rooms.delete(room); });
});
wss.on('listening', () => console.log(`node-ws rooms listening on 127.0.0.1:${port}`));
