//! `rectify report`: totals, units ranked, the item tree, the red list.

use clap::Args;

use crate::app::App;
use crate::error::CliResult;

#[derive(Args, Debug)]
pub struct ReportArgs {}

pub async fn run(_app: &App, _args: ReportArgs) -> CliResult {
    Ok(())
}
