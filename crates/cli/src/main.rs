//! The `ostler` binary: parse, run, render. Everything else is in `ostler-core`.

#[macro_use]
mod output;
mod cli;
mod commands;
mod logging;
mod plans;
mod reporter;
mod table;

fn main() {
    std::process::exit(cli::main());
}
