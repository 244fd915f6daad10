//! `rectify`: the admin CLI of the rectification office, and (later) the background service.

mod app;
mod cli;
mod commands;
mod demo;
mod error;
mod export;
mod import_cmd;
mod output;
mod remind_cmd;
mod report;
mod sheet;

use clap::Parser;

use crate::app::{App, early_lang};
use crate::error::CliError;

fn main() {
    let cli = cli::Cli::parse();
    let lang = early_lang(cli.lang.as_deref());
    let code = match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            let prefix = lang.pick("错误:", "error: ");
            eprintln!("{prefix}{}", e.message);
            e.exit_code()
        }
    };
    std::process::exit(code);
}

fn run(cli: cli::Cli) -> Result<(), CliError> {
    let app = App::load(&cli)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::system(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(commands::run(&app, cli.command))
}
