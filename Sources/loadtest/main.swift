import ArgumentParser
import EventLoop

struct LoadTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadtest",
        abstract: "Load generator and benchmarks for CollabHub.",
        subcommands: [EchoBench.self, CodecBench.self, IdleBench.self, Rooms.self, RunScenario.self, Dashboards.self])
}

raiseFileLimit()
LoadTest.main()
