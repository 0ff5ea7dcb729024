/// A table while the document is read: what each key holds, and how the table was made, which decides what may
/// still be added to it.
///
/// - A header (`[a]`) may define a table only once, and only one that is new or was implicit (`a` of `[a.b]`).
/// - A header may go through any table but an inline one, and through an array of tables to its last table.
/// - Dotted keys (`a.b = 1`) may go through tables they made themselves or that were implicit, never through one
///   defined by a header or an inline table (both are closed to them) nor through an array.
/// - Inline tables and arrays written as values are complete as written: nothing goes into them.
final class TOMLTableBuilder {
    enum Slot {
        /// A value written after `=`, including inline tables and arrays.
        case value(TOMLValue)
        case table(TOMLTableBuilder)
        case arrayOfTables(TOMLArrayOfTablesBuilder)

        var typeName: String {
            switch self {
            case .value(let value): value.typeName
            case .table: "table"
            case .arrayOfTables: "array"
            }
        }
    }

    struct Entry {
        var key: String
        var keyPosition: TOMLPosition
        var slot: Slot
    }

    var definition: TOMLTable.Definition
    let position: TOMLPosition
    let depth: Int
    private var entries: [Entry] = []
    private var index: [[UInt8]: Int] = [:]

    init(definition: TOMLTable.Definition, position: TOMLPosition, depth: Int) {
        self.definition = definition
        self.position = position
        self.depth = depth
    }

    subscript(key: String) -> Slot? {
        self.index[Array(key.utf8)].map { self.entries[$0].slot }
    }

    func add(_ key: String, at keyPosition: TOMLPosition, _ slot: Slot) {
        self.index[Array(key.utf8)] = self.entries.count
        self.entries.append(Entry(key: key, keyPosition: keyPosition, slot: slot))
    }

    /// The finished table. Recursion is as deep as the tables nest, which the parser bounds.
    func table() -> TOMLTable {
        var table = TOMLTable(definition: self.definition)
        for entry in self.entries {
            let value: TOMLValue
            switch entry.slot {
            case .value(let written):
                value = written
            case .table(let builder):
                value = TOMLValue(.table(builder.table()), at: builder.position)
            case .arrayOfTables(let array):
                value = TOMLValue(
                    .array(array.tables.map { TOMLValue(.table($0.table()), at: $0.position) }), at: array.position)
            }
            table.append(TOMLTable.Entry(key: entry.key, keyPosition: entry.keyPosition, value: value))
        }
        return table
    }
}

/// The tables of `[[name]]` headers so far.
final class TOMLArrayOfTablesBuilder {
    let position: TOMLPosition
    /// Never empty: the first `[[name]]` makes the array with its first table.
    var tables: [TOMLTableBuilder]

    init(position: TOMLPosition, first: TOMLTableBuilder) {
        self.position = position
        self.tables = [first]
    }
}

extension TOMLParser {
    /// `[a.b]` or `[[a.b]]`: the table that the key-value pairs after it go into.
    mutating func header(_ root: TOMLTableBuilder) throws(TOMLError) -> TOMLTableBuilder {
        let start = self.offset
        let isArray = self.peek(1) == TOMLSyntax.leftBracket
        let scope = isArray ? "array-of-tables header" : "table header"
        self.offset += isArray ? 2 : 1
        self.skipBlanks()
        let key = try self.key(scope)
        if isArray {
            guard self.next(is: "]]") else { throw self.error(scope, "expected ']]', saw \(self.saw())") }
            self.offset += 2
        } else {
            guard self.peek() == TOMLSyntax.rightBracket else {
                throw self.error(scope, "expected ']', saw \(self.saw())")
            }
            self.offset += 1
        }
        let position = self.position(at: start)
        var table = root
        for (index, part) in key.parts.enumerated().dropLast() {
            let name = key.text(through: index)
            switch table[part.name] {
            case nil:
                let implicit = try self.newTable(.implicit, in: table, position: position, scope: scope, at: start)
                table.add(part.name, at: position, .table(implicit))
                table = implicit
            case .table(let existing):
                table = existing
            case .arrayOfTables(let array):
                guard let last = array.tables.last else {
                    throw self.error(scope, "'\(name)' has no table", at: start)
                }
                table = last
            case .value(let value):
                throw self.error(scope, Self.closed(value, name), at: start)
            }
        }
        guard let last = key.parts.last else { throw self.error(scope, "expected a key", at: start) }
        let name = key.text(through: key.parts.count - 1)
        switch (table[last.name], isArray) {
        case (nil, false):
            let defined = try self.newTable(.header, in: table, position: position, scope: scope, at: start)
            table.add(last.name, at: position, .table(defined))
            return defined
        case (nil, true):
            let element = try self.newTable(.header, in: table, position: position, scope: scope, at: start, depth: 2)
            table.add(
                last.name, at: position, .arrayOfTables(TOMLArrayOfTablesBuilder(position: position, first: element)))
            return element
        case (.table(let existing), false):
            switch existing.definition {
            case .implicit:
                existing.definition = .header
                return existing
            case .dottedKeys:
                throw self.error(scope, "cannot redefine existing table '\(name)' (defined by dotted keys)", at: start)
            case .header, .root, .inline:
                throw self.error(scope, "cannot redefine existing table '\(name)'", at: start)
            }
        case (.arrayOfTables(let array), true):
            let element = try self.newTable(.header, in: table, position: position, scope: scope, at: start, depth: 2)
            array.tables.append(element)
            return element
        case (.arrayOfTables, false):
            throw self.error(scope, "cannot redefine existing array of tables '\(name)' as a table", at: start)
        case (.table, true):
            throw self.error(scope, "cannot redefine existing table '\(name)' as an array of tables", at: start)
        case (.value(let value), true) where value.array != nil:
            throw self.error(
                scope, "cannot append to array '\(name)': an array written as a value is complete as written",
                at: start)
        case (.value(let value), _):
            throw self.error(scope, "cannot redefine existing \(value.typeName) '\(name)'", at: start)
        }
    }

    /// Adds `value` at `key` (which may be dotted) in `table`. A key already there is an error at the value.
    mutating func insert(
        _ value: TOMLValue, at key: Key, valueOffset: Int, into table: TOMLTableBuilder, scope: String
    ) throws(TOMLError) {
        let keyPosition = self.position(at: key.offset)
        var table = table
        for (index, part) in key.parts.enumerated().dropLast() {
            let name = key.text(through: index)
            switch table[part.name] {
            case nil:
                let made = try self.newTable(
                    .dottedKeys, in: table, position: keyPosition, scope: scope, at: part.offset)
                table.add(part.name, at: keyPosition, .table(made))
                table = made
            case .table(let existing):
                switch existing.definition {
                case .dottedKeys:
                    table = existing
                case .implicit:
                    existing.definition = .dottedKeys
                    table = existing
                case .header, .root, .inline:
                    throw self.error(
                        scope, "cannot add to table '\(name)' with dotted keys: it is defined by a [header]",
                        at: part.offset)
                }
            case .arrayOfTables:
                throw self.error(
                    scope, "cannot add to array of tables '\(name)' with dotted keys", at: part.offset)
            case .value(let existing):
                throw self.error(scope, Self.closed(existing, name), at: part.offset)
            }
        }
        guard let last = key.parts.last else { throw self.error(scope, "expected a key", at: key.offset) }
        if let existing = table[last.name] {
            throw self.error(
                scope, "cannot redefine existing \(existing.typeName) '\(key.text(through: key.parts.count - 1))'",
                at: valueOffset)
        }
        table.add(last.name, at: keyPosition, .value(value))
    }

    /// A new table (or, with `depth: 2`, the first table of a new array of tables) below `parent`, if not too deep.
    private mutating func newTable(
        _ definition: TOMLTable.Definition, in parent: TOMLTableBuilder, position: TOMLPosition, scope: String,
        at offset: Int, depth: Int = 1
    ) throws(TOMLError) -> TOMLTableBuilder {
        let depth = parent.depth + depth
        guard depth <= self.options.maximumDepth else {
            throw self.error(scope, "tables nest deeper than \(self.options.maximumDepth) levels", at: offset)
        }
        return TOMLTableBuilder(definition: definition, position: position, depth: depth)
    }

    /// Why nothing can be added inside `value` (named `name`).
    private static func closed(_ value: TOMLValue, _ name: String) -> String {
        switch value.content {
        case .table: "cannot add to inline table '\(name)': an inline table is complete as written"
        case .array: "cannot add to array '\(name)': an array written as a value is complete as written"
        default: "cannot redefine existing \(value.typeName) '\(name)' as a table"
        }
    }
}
