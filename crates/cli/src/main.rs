//! The `ostler` binary: parse, run, render. Everything else is in `ostler-core`.

mod cli;
mod commands;
mod reporter;

fn main() {
    std::process::exit(cli::main());
}
