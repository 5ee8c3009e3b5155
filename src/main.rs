fn main() -> std::process::ExitCode {
    basin::cli::main()
}
