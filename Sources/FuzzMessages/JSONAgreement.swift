import Hub

/// The hub's JSON reader against the reference (the reader before the offsets rewrite): for any bytes,
/// both refuse with the same text, or both read the same members with the same kinds and bytes, and
/// every accessor (string, int, double, bool, nested object and array) gives the same answer.
func checkJSONAgreement(_ bytes: [UInt8], maxDepth: Int) {
    let new: Result<JSONObject, JSONError> = Result { try JSONReader.readObject(bytes, maxDepth: maxDepth) }
        .mapError { $0 as! JSONError }
    let old: Result<ReferenceJSONObject, JSONError> = Result {
        try ReferenceJSONReader.readObject(bytes, maxDepth: maxDepth)
    }.mapError { $0 as! JSONError }
    switch (new, old) {
    case (.failure(let n), .failure(let o)):
        precondition(n.message == o.message, "refusals differ: \"\(n.message)\" / \"\(o.message)\"")
    case (.success(let n), .success(let o)): agree(n, o, depth: 0)
    default: preconditionFailure("one reader accepts what the other refuses: \(new) / \(old)")
    }
    let newArray = Result { try JSONReader.readArray(bytes, maxDepth: maxDepth) }.mapError { $0 as! JSONError }
    let oldArray = Result { try ReferenceJSONReader.readArray(bytes, maxDepth: maxDepth) }.mapError {
        $0 as! JSONError
    }
    switch (newArray, oldArray) {
    case (.failure(let n), .failure(let o)):
        precondition(n.message == o.message, "array refusals differ: \"\(n.message)\" / \"\(o.message)\"")
    case (.success(let n), .success(let o)): agree(n, o, depth: 0)
    default: preconditionFailure("one reader accepts an array the other refuses")
    }
}

private func agree(_ n: JSONObject, _ o: ReferenceJSONObject, depth: Int) {
    let nm = n.members, om = o.members
    precondition(nm.count == om.count, "member counts differ")
    for (a, b) in zip(nm, om) {
        precondition(a.key == b.key, "names differ: \(a.key) / \(b.key)")
        agree(a.value, b.value, depth: depth)
        // A lookup by the decoded name finds the first member of that name in both. (Names with a
        // backslash are left out: the reference compared an escaped name's raw bytes when they were as
        // long as the key, a quirk no lookup of the hub's, whose names have no backslash, could meet.)
        if !a.key.utf8.contains(UInt8(ascii: "\\")) { lookup(n, o, a.key) }
    }
    for key in ["type", "id", "name", "data", "durable", "state", "x", "y", ""] { lookup(n, o, key) }
}

private func lookup(_ n: JSONObject, _ o: ReferenceJSONObject, _ key: String) {
    let x = n[key], y = o[key]
    precondition(x?.bytes.elementsEqual(y?.bytes ?? []) ?? (y == nil), "lookups differ for \(key)")
    precondition(x?.kind == y?.kind, "kinds differ for \(key)")
}

private func agree(_ n: [JSONValue], _ o: [ReferenceJSONValue], depth: Int) {
    precondition(n.count == o.count, "element counts differ")
    for (a, b) in zip(n, o) { agree(a, b, depth: depth) }
}

private func agree(_ a: JSONValue, _ b: ReferenceJSONValue, depth: Int) {
    precondition(a.kind == b.kind && a.bytes.elementsEqual(b.bytes), "values differ")
    precondition(a.string == b.string && a.int == b.int && a.bool == b.bool, "accessors differ")
    precondition(a.double == b.double || (a.double?.isNaN == true && b.double?.isNaN == true), "doubles differ")
    guard depth < 4 else { return }
    switch (a.object, b.object) {
    case (nil, nil): break
    case (let x?, let y?): agree(x, y, depth: depth + 1)
    default: preconditionFailure("nested objects differ")
    }
    switch (a.array, b.array) {
    case (nil, nil): break
    case (let x?, let y?): agree(x, y, depth: depth + 1)
    default: preconditionFailure("nested arrays differ")
    }
}
