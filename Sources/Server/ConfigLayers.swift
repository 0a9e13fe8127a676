import Foundation
import Hub
import Logging

/// Where a setting's value came from. Precedence, highest first: flag, environment, file, default.
public enum ConfigOrigin: String, Sendable {
    case flag, environment, file, `default`
}

/// A bad configuration value, named the way the operator gave it (`--port`, `COLLABHUB_PORT`, or
/// `"port" in hub.json`).
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A value in a JSON configuration file, decoded strictly by Foundation's `JSONDecoder`: `true` is
/// not a number and `1` is not a boolean.
public enum ConfigJSON: Decodable, Sendable, Equatable {
    case bool(Bool), int(Int), double(Double), string(String), array([ConfigJSON]), object([String: ConfigJSON])
    case null

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int.self) {
            self = .int(i)
        } else if let d = try? c.decode(Double.self) {
            self = .double(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([ConfigJSON].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: ConfigJSON].self))
        }
    }
}

/// A type a setting can have, read from an environment variable's text or a JSON file's value.
public protocol ConfigValue {
    /// For errors: "an integer", "a number", ...
    static var expected: String { get }
    init?(environment text: String)
    init?(json: ConfigJSON)
    /// As `config check` prints it.
    var display: String { get }
    /// As the start-up log line carries it.
    var logValue: Logger.Metadata.Value { get }
}

extension Int: ConfigValue {
    public static var expected: String { "an integer" }
    public init?(environment text: String) { self.init(text.trimmingCharacters(in: .whitespaces)) }
    public init?(json: ConfigJSON) {
        switch json {
        case .int(let i): self = i
        case .double(let d) where d.rounded() == d && abs(d) < 9e15: self = Int(d)
        default: return nil
        }
    }
    public var display: String { String(self) }
    public var logValue: Logger.Metadata.Value { .stringConvertible(self) }
}

extension Double: ConfigValue {
    public static var expected: String { "a number" }
    public init?(environment text: String) {
        guard let d = Double(text.trimmingCharacters(in: .whitespaces)), d.isFinite else { return nil }
        self = d
    }
    public init?(json: ConfigJSON) {
        switch json {
        case .int(let i): self = Double(i)
        case .double(let d): self = d
        default: return nil
        }
    }
    public var display: String { self == rounded() && abs(self) < 1e15 ? String(Int(self)) : String(self) }
    public var logValue: Logger.Metadata.Value { .stringConvertible(self) }
}

extension String: ConfigValue {
    public static var expected: String { "a string" }
    public init?(environment text: String) { self = text }
    public init?(json: ConfigJSON) {
        guard case .string(let s) = json else { return nil }
        self = s
    }
    public var display: String { "\"\(self)\"" }
    public var logValue: Logger.Metadata.Value { .string(self) }
}

extension Bool: ConfigValue {
    public static var expected: String { "true or false" }
    public init?(environment text: String) {
        switch text.trimmingCharacters(in: .whitespaces).lowercased() {
        case "1", "true", "yes", "on": self = true
        case "0", "false", "no", "off": self = false
        default: return nil
        }
    }
    public init?(json: ConfigJSON) {
        guard case .bool(let b) = json else { return nil }
        self = b
    }
    public var display: String { self ? "true" : "false" }
    public var logValue: Logger.Metadata.Value { .stringConvertible(self) }
}

/// Lists: comma-separated in the environment; an array of strings (or one comma-separated string) in
/// the file.
extension Array: ConfigValue where Element == String {
    public static var expected: String { "a list of strings" }
    public init?(environment text: String) {
        self = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
    public init?(json: ConfigJSON) {
        switch json {
        case .string(let s): self.init(environment: s)
        case .array(let items):
            var out: [String] = []
            for item in items {
                guard case .string(let s) = item else { return nil }
                out.append(s)
            }
            self = out
        default: return nil
        }
    }
    public var display: String { "[" + map(\.display).joined(separator: ", ") + "]" }
    public var logValue: Logger.Metadata.Value { .array(map { .string($0) }) }
}

/// The configuration of `collabhub serve` from its three sources, each setting named once by its key
/// (`max-message-size`): the flag `--max-message-size`, the variable `COLLABHUB_MAX_MESSAGE_SIZE`, and
/// the key `"max-message-size"` of the JSON file given with `--config`. Flags win over the
/// environment, the environment over the file, the file over the default. Every value is
/// type-checked where it was read, and errors name it as the operator wrote it.
public final class ConfigLayers {
    public struct Entry: Sendable {
        public let key: String
        public let value: String
        public let origin: ConfigOrigin
        public var logValue: Logger.Metadata.Value? = nil
    }

    let environment: [String: String]
    let file: [String: ConfigJSON]
    public let filePath: String?
    /// Old names of variables, still read: new name -> old.
    let aliases: [String: String]
    public private(set) var entries: [Entry] = []
    private var origins: [String: ConfigOrigin] = [:]

    /// Reads and parses the file (JSON, one object of settings), if any.
    public init(filePath: String?, environment: [String: String], aliases: [String: String] = [:]) throws {
        self.environment = environment
        self.filePath = filePath
        self.aliases = aliases
        guard let filePath else {
            file = [:]
            return
        }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: filePath)) } catch {
            throw ConfigError("cannot read the configuration file \(filePath): \(error.localizedDescription)")
        }
        let parsed: ConfigJSON
        do { parsed = try JSONDecoder().decode(ConfigJSON.self, from: data) } catch {
            throw ConfigError("\(filePath) is not valid JSON: \(Self.describe(error))")
        }
        guard case .object(let object) = parsed else {
            throw ConfigError("\(filePath) must hold one JSON object of settings, like {\"port\": 8080}")
        }
        file = object
    }

    public static func variable(_ key: String) -> String {
        "COLLABHUB_" + key.uppercased().replacingOccurrences(of: "-", with: "_")
    }

    /// How the operator gave `key`, for error messages.
    public func name(_ key: String) -> String {
        switch origins[key] {
        case .flag: return "--\(key)"
        case .environment:
            let v = Self.variable(key)
            if environment[v] == nil, let old = aliases[v] { return old }
            return v
        case .file: return "\"\(key)\" in \(filePath ?? "the configuration file")"
        case .default, nil: return key
        }
    }

    /// The setting's value: the flag's if given, else the environment's, else the file's, else `fallback`.
    public func value<T: ConfigValue>(_ key: String, flag: T?, default fallback: T, secret: Bool = false) throws -> T {
        try lookup(key, flag: flag, secret: secret) ?? record(key, fallback, .default, secret: secret)
    }

    /// As `value`, for settings with no default (nil: not set anywhere).
    public func optional<T: ConfigValue>(_ key: String, flag: T?, secret: Bool = false) throws -> T? {
        if let v = try lookup(key, flag: flag, secret: secret) { return v }
        entries.append(Entry(key: key, value: "(not set)", origin: .default))
        return nil
    }

    private func lookup<T: ConfigValue>(_ key: String, flag: T?, secret: Bool) throws -> T? {
        if let flag { return record(key, flag, .flag, secret: secret) }
        let variable = Self.variable(key)
        if let text = environment[variable] ?? aliases[variable].flatMap({ environment[$0] }) {
            origins[key] = .environment
            guard let v = T(environment: text) else {
                throw ConfigError("\(name(key)) must be \(T.expected) (got \(secret ? "a bad value" : "\"\(text)\""))")
            }
            return record(key, v, .environment, secret: secret)
        }
        // A secret may come from a file named by COLLABHUB_<NAME>_FILE (systemd credentials, Docker
        // secrets): kept out of argv (/proc/*/cmdline) and out of the environment alike.
        if secret, let path = environment[variable + "_FILE"] {
            origins[key] = .environment
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ConfigError("\(variable)_FILE names \(path), which cannot be read")
            }
            var text = String(decoding: data, as: UTF8.self)
            while text.last == "\n" || text.last == "\r" { text.removeLast() }
            guard let v = T(environment: text) else {
                throw ConfigError("\(variable)_FILE must hold \(T.expected) (got a bad value)")
            }
            return record(key, v, .environment, secret: secret)
        }
        if let json = file[key] {
            origins[key] = .file
            guard let v = T(json: json) else { throw ConfigError("\(name(key)) must be \(T.expected)") }
            return record(key, v, .file, secret: secret)
        }
        return nil
    }

    /// Secrets given as flags (visible to every user of the machine in /proc/*/cmdline), for a warning.
    public var secretsOnCommandLine: [String] {
        entries.filter { $0.origin == .flag && $0.value == "\"********\"" }.map { "--" + $0.key }
    }

    private func record<T: ConfigValue>(_ key: String, _ v: T, _ origin: ConfigOrigin, secret: Bool) -> T {
        origins[key] = origin
        let shown = v.display, masked = secret && shown != "[]"
        entries.append(
            Entry(
                key: key, value: masked ? "\"********\"" : shown, origin: origin,
                logValue: masked ? .string("********") : v.logValue))
        return v
    }

    /// Refuses keys in the file that no setting reads (a misspelt key would otherwise be ignored).
    public func checkUnknownKeys() throws {
        let known = Set(entries.map(\.key))
        let unknown = file.keys.filter { !known.contains($0) }.sorted()
        guard let first = unknown.first else { return }
        let hint = Names.nearest(first, in: known).map { " (did you mean \"\($0)\"?)" } ?? ""
        throw ConfigError(
            "unknown setting \"\(first)\" in \(filePath ?? "the configuration file")\(hint); "
                + "`collabhub config check` lists every setting")
    }

    /// Variables named like settings that no setting reads (reported by `config check`, not fatal: the
    /// environment is shared with other programs).
    public var unknownVariables: [String] {
        let known = Set(entries.map { Self.variable($0.key) }).union(aliases.values)
            .union(["COLLABHUB_CONFIG", "COLLABHUB_TLS_SOCKET_IO"])  // (the latter: EventLoop's TLSSocketIO)
        return environment.keys.filter { $0.hasPrefix("COLLABHUB_") && !known.contains($0) }.sorted()
    }

    /// The effective configuration, one line per setting, secrets masked.
    public func render() -> String {
        let width = (entries.map(\.key.count).max() ?? 0) + 1
        let valueWidth = min(40, entries.map(\.value.count).max() ?? 0)
        var out = "# effective configuration (flags > environment > file > defaults)\n"
        if let filePath { out += "# file: \(filePath)\n" }
        for e in entries {
            let origin: String
            switch e.origin {
            case .flag: origin = "--\(e.key)"
            case .environment: origin = Self.variable(e.key)
            case .file: origin = "file"
            case .default: origin = "default"
            }
            let pad = String(repeating: " ", count: max(1, width - e.key.count))
            let valuePad = String(repeating: " ", count: max(1, valueWidth + 2 - e.value.count))
            out += "\(e.key)\(pad)= \(e.value)\(valuePad)# \(origin)\n"
        }
        for v in unknownVariables { out += "# warning: \(v) is set but is not a setting\n" }
        return out
    }

    /// The effective configuration (the settings that have a value) for the start-up log line.
    public var summary: Logger.Metadata {
        var out: Logger.Metadata = [:]
        for e in entries { if let v = e.logValue { out[e.key] = v } }
        return out
    }

    static func describe(_ error: Error) -> String {
        if case DecodingError.dataCorrupted(let context) = error {
            let underlying = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            return underlying ?? context.debugDescription
        }
        return "\(error)"
    }
}
