//! The command-line contract. The forms here are relied on by users and checks: add to them, but
//! do not change what exists.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "rectify",
    version,
    about = "整改进展跟踪:交办、整改、验收销号、催办提醒 / Rectification progress tracking",
    propagate_version = true
)]
pub struct Cli {
    /// Configuration file (default: rectify.toml in the current folder, if present).
    #[arg(long, global = true, value_name = "FILE", env = "RECTIFY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL: sqlite://FILE (created when missing) or postgres://… (also RECTIFY_DATABASE).
    #[arg(long, global = true, value_name = "URL")]
    pub database: Option<String>,
    /// The operator acting (also RECTIFY_OPERATOR). Every event records it.
    #[arg(
        long = "as",
        global = true,
        value_name = "OPERATOR",
        env = "RECTIFY_OPERATOR"
    )]
    pub operator: Option<String>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Language of messages and output: zh (default) or en.
    #[arg(long, global = true, value_name = "zh|en")]
    pub lang: Option<String>,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create or migrate the database; create the first admin.
    Init {
        #[arg(long, value_name = "NAME")]
        admin: Option<String>,
    },
    /// Units (lead and cooperating units).
    #[command(subcommand)]
    Unit(UnitCmd),
    /// Operators: who may act, with which role.
    #[command(subcommand)]
    Operator(OperatorCmd),
    /// Rounds: an inspection, an audit, a meeting…
    #[command(subcommand)]
    Round(RoundCmd),
    /// Items: add, list, show, history.
    #[command(subcommand)]
    Item(ItemCmd),
    /// Assign an item to a lead unit with a deadline (交办).
    Assign {
        id: i64,
        #[arg(long, value_name = "UNIT")]
        lead: String,
        #[command(flatten)]
        due: DueArgs,
        #[arg(long = "co", value_name = "UNIT")]
        co: Vec<String>,
        #[arg(long, value_name = "NAME")]
        leader: Option<String>,
    },
    /// The lead unit acknowledges an assignment (签收).
    Ack { id: i64 },
    /// Report progress (进展报送), optionally with evidence.
    Progress {
        id: i64,
        #[arg(long)]
        note: String,
        #[arg(long, value_name = "N")]
        percent: Option<u8>,
        #[arg(long, value_name = "FILE")]
        evidence: Vec<PathBuf>,
    },
    /// Submit for close-out (申请销号).
    Submit {
        id: i64,
        #[arg(long)]
        note: String,
        #[arg(long, value_name = "FILE")]
        evidence: Vec<PathBuf>,
    },
    /// Verify: close the item (销号), or keep it as long-term.
    Verify {
        id: i64,
        #[arg(long)]
        note: Option<String>,
        #[arg(long = "long-term", requires = "cadence")]
        long_term: bool,
        #[arg(long, value_enum)]
        cadence: Option<CadenceArg>,
    },
    /// Send back to be redone (退回重办).
    Reject {
        id: i64,
        #[arg(long)]
        reason: String,
    },
    /// Request an extension (申请延期), before the deadline.
    Extend {
        id: i64,
        #[arg(long, value_name = "YYYY-MM-DD")]
        to: String,
        #[arg(long)]
        reason: String,
    },
    /// Decide an extension request.
    #[command(subcommand)]
    Extension(ExtensionCmd),
    /// Reassign to another lead unit (转办).
    Reassign {
        id: i64,
        #[arg(long, value_name = "UNIT")]
        lead: String,
        #[arg(long)]
        reason: String,
    },
    /// Reopen a closed or long-term item after a look-back (回头看).
    Reopen {
        id: i64,
        #[arg(long)]
        reason: String,
        /// A new deadline for the renewed work (the old one has usually passed).
        #[arg(long, value_name = "YYYY-MM-DD")]
        due: Option<String>,
    },
    /// Finish a long-term item.
    Finish {
        id: i64,
        #[arg(long)]
        note: Option<String>,
    },
    /// Cancel an item, or merge it into another (撤销/合并).
    Cancel {
        id: i64,
        #[arg(long)]
        reason: String,
        #[arg(long = "merged-into", value_name = "ID")]
        merged_into: Option<i64>,
    },
    /// The tamper-evident record.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// The working-day calendar.
    #[command(subcommand)]
    Calendar(CalendarCmd),
    /// The effective configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Run the scheduler and the mail dispatcher until SIGINT/SIGTERM.
    Serve {
        /// Log format: human (default) or json.
        #[arg(long = "log-format", value_name = "human|json")]
        log_format: Option<String>,
    },
    /// Reminder passes by hand (for tests, and offices that use system cron).
    #[command(subcommand)]
    Remind(RemindCmd),
    /// The mail outbox.
    #[command(subcommand)]
    Outbox(OutboxCmd),
    /// Import items from a notice, meeting minutes or a ledger (one transaction).
    #[command(subcommand)]
    Import(crate::import_cmd::ImportCmd),
    /// Export a ledger (.xlsx or .csv).
    #[command(subcommand)]
    Export(crate::export::ExportCmd),
    /// Progress report: totals, units ranked, item tree, red list (md, html, xlsx).
    Report(crate::report::ReportArgs),
    /// Build a demo database in a folder of its own and walk items through their life.
    Demo {
        /// Folder for the demo (default: ./rectify-demo). An earlier demo there is replaced.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct DueArgs {
    /// Deadline (完成时限).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub due: Option<String>,
    /// Keep at it long-term (长期坚持): no deadline.
    #[arg(long = "long-term")]
    pub long_term: bool,
}

#[derive(Args, Debug, Clone)]
#[group(required = false, multiple = false)]
pub struct OptionalDueArgs {
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub due: Option<String>,
    #[arg(long = "long-term")]
    pub long_term: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CadenceArg {
    Monthly,
    Quarterly,
}

#[derive(Subcommand, Debug)]
pub enum UnitCmd {
    /// Add a unit.
    Add {
        code: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_name = "CODE")]
        parent: Option<String>,
        #[arg(long = "email", value_name = "ADDR")]
        emails: Vec<String>,
        #[arg(long, value_name = "NAME")]
        leader: Option<String>,
        /// The responsible leader's email (copied on escalations).
        #[arg(long = "leader-email", value_name = "ADDR")]
        leader_email: Option<String>,
        /// Another name the unit goes by in documents and ledgers.
        #[arg(long = "alias", value_name = "NAME")]
        aliases: Vec<String>,
    },
    /// List units.
    List,
}

#[derive(Subcommand, Debug)]
pub enum OperatorCmd {
    /// Add an operator.
    Add {
        name: String,
        #[arg(long, value_name = "admin|unit|viewer")]
        role: String,
        #[arg(long, value_name = "CODE")]
        unit: Option<String>,
        #[arg(long, value_name = "ADDR")]
        email: Option<String>,
    },
    /// List operators.
    List,
}

#[derive(Subcommand, Debug)]
pub enum RoundCmd {
    /// Add a round.
    Add {
        code: String,
        #[arg(long)]
        title: String,
        #[arg(
            long,
            default_value = "inspection",
            value_name = "inspection|audit|meeting|instruction|other"
        )]
        source: String,
    },
    /// List rounds.
    List,
}

#[derive(Subcommand, Debug)]
pub enum ItemCmd {
    /// Add an item; with --lead and a deadline it is assigned at once.
    Add {
        #[arg(long, value_name = "CODE")]
        round: String,
        #[arg(long)]
        title: String,
        #[arg(long, value_name = "ID")]
        parent: Option<i64>,
        #[arg(long, value_name = "TEXT")]
        number: Option<String>,
        #[arg(long, value_name = "UNIT")]
        lead: Option<String>,
        #[arg(long = "co", value_name = "UNIT")]
        co: Vec<String>,
        #[arg(long, value_name = "NAME")]
        leader: Option<String>,
        #[command(flatten)]
        due: OptionalDueArgs,
    },
    /// List items.
    List {
        #[arg(long, value_name = "CODE")]
        round: Option<String>,
        #[arg(long, value_name = "CODE")]
        unit: Option<String>,
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
        /// Only items past their deadline that are still with the unit.
        #[arg(long)]
        overdue: bool,
        /// Only items with this traffic light.
        #[arg(long, value_name = "red|yellow|green")]
        light: Option<String>,
    },
    /// Show one item.
    Show { id: i64 },
    /// The item's full record.
    History { id: i64 },
}

#[derive(Subcommand, Debug)]
pub enum ExtensionCmd {
    /// Approve an extension request: the deadline moves.
    Approve {
        ext_id: i64,
        #[arg(long)]
        note: Option<String>,
    },
    /// Refuse an extension request.
    Refuse {
        ext_id: i64,
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Re-check every item's event chain; exits non-zero and names the item and event on a break.
    Verify {
        /// Also re-hash every stored evidence file.
        #[arg(long)]
        evidence: bool,
        /// Verify an audit export file instead of the database (works on any machine).
        #[arg(long, value_name = "FILE", conflicts_with = "evidence")]
        file: Option<PathBuf>,
        /// With --file: the office's published public key; the export must be signed with it.
        #[arg(long, value_name = "HEX", requires = "file")]
        public_key: Option<String>,
    },
    /// Export the sealed record of an item or a round (JSON with every chain hash).
    Export {
        #[arg(long, value_name = "ID", conflicts_with = "round")]
        item: Option<i64>,
        #[arg(long, value_name = "CODE")]
        round: Option<String>,
        /// Output file (default: stdout).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Sign the export with the office's key file (made by `audit keygen`).
        #[arg(long, value_name = "FILE", env = "RECTIFY_AUDIT_SIGN_KEY")]
        sign_key: Option<PathBuf>,
    },
    /// Make the office's signing key for audit exports; prints the public key to publish.
    Keygen {
        /// Where to write the private key (created readable by its owner only; never overwritten).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum CalendarCmd {
    /// List the off days and make-up working days of a year.
    Show { year: i32 },
    /// Say which years the calendar covers.
    Check,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Print the effective configuration, secrets redacted.
    Show,
    /// Print a complete example configuration file.
    Example,
}

#[derive(Subcommand, Debug)]
pub enum RemindCmd {
    /// Print what a pass at that time would send, without sending or writing anything.
    Preview {
        /// The moment of the pass (RFC 3339); default now (or RECTIFY_NOW).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
    /// Run one pass: queue the reminders due, then deliver the outbox.
    Run {
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum OutboxCmd {
    /// List messages, optionally by state (pending, sending, sent, failed).
    List {
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
    },
    /// Put a failed message back in the queue.
    Retry { id: i64 },
}
