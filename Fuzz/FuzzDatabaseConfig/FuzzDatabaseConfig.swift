import Foundation
import FuzzSupport
import PortSyncCore

/// SONiC's `database_config.json`: any bytes either parse into a map that holds the three databases portsyncd
/// uses, each on a listed instance, or throw a `ParseError`; never a trap.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    let parsed: SonicDatabaseConfig
    do {
        parsed = try SonicDatabaseConfig.parse(bytes)
    } catch {
        check(!error.description.isEmpty, "an error without a description")
        return 0
    }
    for name in ["APPL_DB", "CONFIG_DB", "STATE_DB"] {
        check(parsed.databases[name] != nil, "\(name) missing from a parsed map")
    }
    for (name, database) in parsed.databases {
        check(database.id >= 0, "\(name) has id \(database.id)")
        check(parsed.instances[database.instance] != nil, "\(name) is on an unlisted instance")
    }
    do {
        let layout = try parsed.layout()
        check(layout.appl.id == parsed.databases["APPL_DB"]?.id, "APPL_DB id changed by layout()")
        check(layout.config.id == parsed.databases["CONFIG_DB"]?.id, "CONFIG_DB id changed by layout()")
        check(layout.state.id == parsed.databases["STATE_DB"]?.id, "STATE_DB id changed by layout()")
    } catch {
        check(!error.description.isEmpty, "an error without a description")
    }
    check((try? SonicDatabaseConfig.parse(bytes)) == parsed, "parsing the same bytes twice differs")
    return 0
}

@main
enum FuzzDatabaseConfig {
    static func main() { runFuzzer(fuzz) }
}
