fn main() -> std::process::ExitCode {
    reseal::cli::main()
}
