import XCTest
@testable import Hub
import WebSocket

/// The authorization table, surface by surface, and the token claims it rests on.
final class AuthorizationTests: XCTestCase {
    let all: [Surface] = [.createSession, .listSessions, .describeSession("AAAAAA"), .changeSession("AAAAAA"), .endSession("AAAAAA"),
                          .readTranscript("AAAAAA"), .readActivity, .publishRun("r1"), .readRuns, .readRun("r1"), .watch("run:r1"),
                          .manageKeys, .manageWebhooks]

    func allowed(_ p: Principal) -> [Surface] { all.filter { Authorization.allows(p, $0) } }

    func testShareLinksAreMadeByHostsAndTranscriptReadersOnly() {
        let share = Surface.shareSession("AAAAAA")
        for p in [Principal.admin, .host(session: "AAAAAA"), .member(session: "AAAAAA", role: .host),
                  .apiKey(id: "k", scopes: [.transcriptsRead], runs: nil), .anonymous(openMode: true)] {
            XCTAssertTrue(Authorization.allows(p, share), "\(p)")
        }
        // A viewer token (which a share link's own token resolves to), an editor, another session's host.
        for p in [Principal.member(session: "AAAAAA", role: .viewer), .member(session: "AAAAAA", role: .editor),
                  .host(session: "BBBBBB"), .apiKey(id: "k", scopes: [.sessionsRead], runs: nil),
                  .anonymous(openMode: false), .watcher(channels: ["*"])] {
            XCTAssertFalse(Authorization.allows(p, share), "\(p)")
        }
    }

    func testOpenModeAllowsEverythingAndClosedAnonymousNothing() {
        XCTAssertEqual(allowed(.anonymous(openMode: true)), all.filter { ![.changeSession("AAAAAA"), .endSession("AAAAAA"), .manageKeys].contains($0) })
        XCTAssertEqual(allowed(.anonymous(openMode: false)), [])
        XCTAssertEqual(allowed(.admin).count, all.count)
    }

    func testKeysGetWhatTheirScopesName() {
        XCTAssertEqual(allowed(.apiKey(id: "k", scopes: [], runs: nil)), [])
        XCTAssertEqual(allowed(.apiKey(id: "k", scopes: [.sessionsRead], runs: nil)), [.listSessions, .describeSession("AAAAAA")])
        XCTAssertEqual(allowed(.apiKey(id: "k", scopes: [.transcriptsRead], runs: nil)), [.readTranscript("AAAAAA")])
        XCTAssertEqual(allowed(.apiKey(id: "k", scopes: [.runsRead], runs: nil)), [.readRuns, .readRun("r1"), .watch("run:r1")])
        let limited = Principal.apiKey(id: "k", scopes: [.runsPublish], runs: ["r1", "ci-*"])
        XCTAssertTrue(Authorization.allows(limited, .publishRun("r1")))
        XCTAssertTrue(Authorization.allows(limited, .publishRun("ci-42")))
        XCTAssertFalse(Authorization.allows(limited, .publishRun("r2")))
        XCTAssertFalse(Authorization.allows(limited, .publishRun("r10")))
        XCTAssertTrue(Authorization.allows(limited, .startRun(owner: "anyone")), "no owners: any owner")
    }

    /// A key with `owners` starts runs for those owners only (else it could put runs on any team's dashboard).
    func testKeysWithOwnersStartRunsOnlyForThem() {
        let key = Principal.apiKey(id: "k", scopes: [.runsPublish], runs: ["ci-*"], owners: ["team-a", "ci-*"])
        XCTAssertTrue(Authorization.allows(key, .startRun(owner: "team-a")))
        XCTAssertTrue(Authorization.allows(key, .startRun(owner: "ci-nightly")))
        XCTAssertFalse(Authorization.allows(key, .startRun(owner: "team-b")))
        XCTAssertFalse(Authorization.allows(key, .startRun(owner: "team-a2")))
        XCTAssertFalse(Authorization.allows(.apiKey(id: "k", scopes: [.runsRead], runs: nil), .startRun(owner: "x")))
        XCTAssertFalse(
            Authorization.allows(.apiKey(id: "k", scopes: [.runsPublish], runs: nil, owners: []), .startRun(owner: "x")),
            "an empty list allows no owner")
        XCTAssertTrue(Authorization.allows(.admin, .startRun(owner: "x")))
        XCTAssertFalse(Authorization.allows(.watcher(channels: ["dashboard:x"]), .startRun(owner: "x")))
    }

    func testHostKeysAndMemberTokensReachOnlyTheirSession() {
        XCTAssertEqual(allowed(.host(session: "AAAAAA")), [.describeSession("AAAAAA"), .changeSession("AAAAAA"), .endSession("AAAAAA"), .readTranscript("AAAAAA")])
        XCTAssertEqual(allowed(.host(session: "BBBBBB")), [])
        XCTAssertEqual(allowed(.member(session: "AAAAAA", role: .viewer)), [.describeSession("AAAAAA"), .readTranscript("AAAAAA")])
        XCTAssertEqual(allowed(.member(session: "AAAAAA", role: .host)).count, 4)
        XCTAssertEqual(allowed(.member(session: "*", role: .editor)), [.describeSession("AAAAAA"), .readTranscript("AAAAAA")])
        XCTAssertEqual(allowed(.member(session: "BBBBBB", role: .host)), [])
    }

    func testWatcherTokensCoverTheirChannelsOnly() {
        let w = Principal.watcher(channels: ["run:r1", "dashboard:acme*"])
        XCTAssertTrue(Authorization.allows(w, .watch("run:r1")))
        XCTAssertTrue(Authorization.allows(w, .readRun("r1")))
        XCTAssertTrue(Authorization.allows(w, .watch("dashboard:acme-ci")))
        XCTAssertFalse(Authorization.allows(w, .watch("run:r10")))
        XCTAssertFalse(Authorization.allows(w, .watch("dashboard:other")))
        XCTAssertFalse(Authorization.allows(w, .readRuns))
    }

    func testTokensMustNameASessionOrChannels() {
        let key = Array("0123456789abcdef0123".utf8)
        let v = TokenVerifier(keys: ["default": key])
        let now = 1_000_000
        let noSession = TokenVerifier.sign(["sub": "u", "exp": now + 60], key: key)
        guard case .failure(let e) = v.verify(noSession, now: Int64(now)) else { return XCTFail("a token naming no session was accepted") }
        XCTAssertEqual(e.kind, .claims)
        let watcher = TokenVerifier.sign(["sub": "u", "exp": now + 60, "channels": ["run:r1"]], key: key)
        XCTAssertEqual(try v.verify(watcher, now: Int64(now)).get().principal, .watcher(channels: ["run:r1"]))
        let member = TokenVerifier.sign(["sub": "u", "exp": now + 60, "session": "*", "role": "viewer"], key: key)
        XCTAssertEqual(try v.verify(member, now: Int64(now)).get().principal, .member(session: "*", role: .viewer))
    }

    func testKeysGrantOnlyWhatTheirMakerHolds() {
        // N7: the admin key grants anything; a keys:admin key a subset of its own, never keys:admin.
        let maker = Principal.apiKey(id: "m", scopes: [.keysAdmin, .sessionsRead, .runsPublish], runs: ["ci-*"])
        func grant(_ p: Principal, _ scopes: Set<Scope>, runs: [String]? = nil, quotas: [Int] = [1, 1, 1]) -> String? {
            Authorization.mayGrant(p, scopes: scopes, runs: runs, quotas: quotas, makerQuotas: [10, 100, 1000])?.field
        }
        XCTAssertNil(grant(.admin, Set(Scope.allCases), quotas: [100_000_000, 1, 1]))
        XCTAssertNil(grant(maker, [.sessionsRead]))
        XCTAssertEqual(grant(maker, [.transcriptsRead]), "scopes")
        XCTAssertEqual(grant(maker, [.keysAdmin]), "scopes")
        XCTAssertNil(grant(maker, [.runsPublish], runs: ["ci-a*", "ci-7"]))
        XCTAssertEqual(grant(maker, [.runsPublish]), "runs", "no runs list is every run")
        XCTAssertEqual(grant(maker, [.runsPublish], runs: ["prod-*"]), "runs")
        XCTAssertEqual(grant(maker, [.runsPublish], runs: ["c*"]), "runs", "a wider prefix")
        XCTAssertEqual(grant(maker, [.sessionsRead], quotas: [11, 1, 1]), "per_minute")
        XCTAssertEqual(grant(.member(session: "*", role: .host), [.sessionsRead]), "scopes")
        XCTAssertEqual(grant(.anonymous(openMode: true), [.sessionsRead]), "scopes")
    }

    func testShareTokensPlayBackAndShowNothingLive() {
        // N12: a share link's token reads its session's transcript only: no presence, no settings.
        let p = Principal.replay(session: "ABCDEFGH")
        XCTAssertTrue(Authorization.allows(p, .readTranscript("ABCDEFGH")))
        XCTAssertFalse(Authorization.allows(p, .readTranscript("OTHERSES")))
        for s: Surface in [.describeSession("ABCDEFGH"), .changeSession("ABCDEFGH"), .shareSession("ABCDEFGH"),
            .listSessions, .watch("run:x")] {
            XCTAssertFalse(Authorization.allows(p, s), "\(s)")
        }
        XCTAssertFalse(Authorization.mayReadEveryTranscript(p))
        XCTAssertFalse(Authorization.mayReadEveryTranscript(.apiKey(id: "w", scopes: [.webhooksAdmin], runs: nil)))
        XCTAssertTrue(Authorization.mayReadEveryTranscript(.apiKey(id: "w", scopes: [.transcriptsRead], runs: nil)))
    }

    func testScopeLists() {
        XCTAssertEqual(try Scope.parseList("sessions:read, runs:read").get(), [.sessionsRead, .runsRead])
        guard case .failure(let u) = Scope.parseList("sessions:read,root") else { return XCTFail() }
        XCTAssertEqual(u.name, "root")
    }
}
