//! cutover's command line: see [`cli`] for the subcommands and their exit codes.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
