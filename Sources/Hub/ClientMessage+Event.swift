extension ClientMessage {
    /// An app event (`{"type":"event","name":..,"data":{..},"durable"?,"id"?}`), the most frequent client
    /// message: read apart from the other types so that it is found before any of them is tried. `size` is
    /// the message's length in bytes, `ref` its `id` when it is a string.
    static func parseEvent(_ obj: JSONObject, size: Int, limits: MessageLimits, ref: String?) throws -> ClientMessage {
        guard size <= limits.maxEventBytes else {
            throw MessageError("too_large", "event is larger than \(limits.maxEventBytes) bytes", ref: ref)
        }
        // As every other type's required string: missing or null, not a string, too long; then its form.
        guard let nameValue = obj.value("name"), nameValue.kind != .null else {
            throw MessageError("missing_field", "event needs \"name\"", field: "name", ref: ref)
        }
        guard let name = nameValue.string else {
            throw MessageError("invalid_field", "\"name\" must be a string", field: "name", ref: ref)
        }
        guard name.fits(64) else {
            throw MessageError(
                "too_large", "\"name\" is longer than 64 characters (256 bytes)", field: "name", ref: ref)
        }
        guard Self.isValidEventName(name) else {
            throw MessageError(
                "invalid_field", "\"name\" must be 1-64 characters of a-z, 0-9, _ . : -", field: "name", ref: ref)
        }
        let data = obj.value("data")
        if let data, data.kind != .object && data.kind != .null {
            throw MessageError("invalid_field", "\"data\" must be an object", field: "data", ref: ref)
        }
        var durable = false
        if let d = obj.value("durable"), d.kind != .null {
            guard let b = d.bool else {
                throw MessageError("invalid_field", "\"durable\" must be a boolean", field: "durable", ref: ref)
            }
            durable = b
        }
        if durable && ref == nil {
            throw MessageError("missing_field", "a durable event needs an \"id\"", field: "id")
        }
        return .event(
            AppEvent(
                name: name, data: data?.kind == .object ? data!.bytes : ArraySlice(Array("{}".utf8)),
                durable: durable, id: ref))
    }
}
