/// The version `portsyncd --version` prints.
public enum PortsyncdVersion {
    public static let string = "0.1.0"
}
