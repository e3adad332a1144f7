use clap::{Parser, Subcommand};
use coinfront::clock::SystemClock;
use coinfront::config::Settings;
use coinfront::startup::Application;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "coinfront",
    version,
    about = "A self-hosted storefront for TikTok coin top-ups"
)]
struct Cli {
    /// A TOML config file (default: ./coinfront.toml when it exists).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the shop (the default).
    Serve,
    /// Run database migrations and exit.
    Migrate,
    /// Print the settings in force (secrets redacted) and exit; exits 2 on any bad setting.
    CheckConfig,
    /// Copy the SQLite database into FILE while the shop serves (PostgreSQL: use pg_dump).
    Backup {
        /// A new file (never overwritten).
        file: PathBuf,
    },
    /// Replace the SQLite database with the backup in FILE. The shop must be stopped.
    Restore { file: PathBuf },
    /// Manage support-console staff.
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
}

#[derive(Subcommand)]
enum StaffCommand {
    /// Add a staff member. The password is prompted for (or read from standard input).
    Add {
        #[arg(long)]
        email: String,
        /// `agent` or `admin`.
        #[arg(long, default_value = "agent")]
        role: String,
    },
    /// Disable a staff member; their sessions end at once.
    Disable {
        #[arg(long)]
        email: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    coinfront::telemetry::init(settings.log_format);
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::CheckConfig = command {
        // A bad value is reported by `Settings::load` above; these are the checks start-up
        // makes beyond it (mail addresses and transport, the TLS files).
        return match coinfront::cli::check_config(&settings, cli.config.as_deref()) {
            Ok(printed) => {
                print!("{printed}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        };
    }
    // The other commands' operator reads their error once, on the terminal; the server's and
    // the migration's errors also go to the log, where a collector reads them.
    let log_errors = matches!(command, Command::Serve | Command::Migrate);
    let result = match command {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(settings).await,
        Command::CheckConfig => unreachable!("answered above"),
        Command::Backup { file } => coinfront::cli::backup(&settings, &file).await,
        Command::Restore { file } => coinfront::cli::restore(&settings, &file).await,
        Command::Staff {
            command: StaffCommand::Add { email, role },
        } => coinfront::cli::add(settings, &email, &role).await,
        Command::Staff {
            command: StaffCommand::Disable { email },
        } => coinfront::cli::disable(settings, &email).await,
    };
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if log_errors {
                tracing::error!("{e:#}");
            }
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    };
    coinfront::telemetry::flush();
    code
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings, Arc::new(SystemClock)).await?;
    app.run_until_stopped().await
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    std::fs::create_dir_all(&settings.data_dir)?;
    let db = coinfront::db::Db::connect(&settings.database_url(), 1).await?;
    db.migrate().await?;
    tracing::info!("migrations are up to date");
    Ok(())
}
