import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `--window-hook CMD`: `sh -c 'CMD start'` just before the measured window opens and `sh -c 'CMD end'`
/// just after it closes, waited for, so a benchmark script can sample what the load generator does not
/// see (the CPU of several server processes, Redis's INFO, a syscall count) over exactly that window.
/// Spawned and reaped directly (`posix_spawn`, `waitpid`): Foundation's `Process` never saw its child
/// exit beside the libev loop.
enum WindowHook {
    static func run(_ command: String?, _ phase: String) {
        guard let command, !command.isEmpty else { return }
        let args = ["/bin/sh", "-c", "\(command) \(phase)"]
        var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/bin/sh", nil, nil, &argv, environ)
        guard rc == 0 else {
            FileHandle.standardError.write(
                Data("warning: --window-hook did not run: \(String(cString: strerror(rc)))\n".utf8))
            return
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }
}
