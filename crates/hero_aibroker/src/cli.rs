//! The command line: global flags, every subcommand and its `--help` examples.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "hero_aibroker",
    version,
    about = "Talk to a running hero_aibroker: one-shot chat and every operator command",
    after_help = "Examples:
  hero_aibroker health
  hero_aibroker models --json | jq '.[].id'
  echo 'Say hi' | hero_aibroker chat -p -
  hero_aibroker completions bash > ~/.local/share/bash-completion/completions/hero_aibroker"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Root of the socket tree; the broker's sockets are <DIR>/hero_aibroker/{rest,rpc}.sock
    /// [default: ~/hero/var/sockets]
    #[arg(long, global = true, env = "HERO_SOCKET_DIR", value_name = "DIR")]
    pub socket_dir: Option<PathBuf>,
    /// The broker's rpc.sock (its rest.sock is the one beside it); overrides --socket-dir
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Model for chat: a name, an alias, provider/model or auto (`chat -m` overrides it)
    #[arg(
        short,
        long,
        global = true,
        default_value = "auto",
        value_name = "MODEL"
    )]
    pub model: String,
    /// Print the result as JSON instead of a table
    #[arg(long, global = true)]
    pub json: bool,
    /// Retry this many times, with exponential backoff (200 ms, 400 ms, 800 ms…), while the
    /// socket is missing or refuses
    #[arg(long, global = true, default_value_t = 3, value_name = "N")]
    pub max_retries: u32,
    /// Admin token for mutating calls (keys, priority, reload)
    #[arg(
        long,
        global = true,
        env = "ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<String>,
    /// Broker API key (sk-hab-…) sent with chat requests
    #[arg(
        long,
        global = true,
        env = "HERO_AIBROKER_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Broker health: status, version, uptime, ledger writer
    #[command(after_help = "Examples:\n  hero_aibroker health\n  hero_aibroker health --json")]
    Health,
    /// Sockets, database and counts of models, providers, keys and requests
    #[command(after_help = "Examples:\n  hero_aibroker info\n  hero_aibroker info --json")]
    Info,
    /// Every model: tier, context window, price in/out (USD per million tokens), servable backends
    #[command(after_help = "Examples:\n  hero_aibroker models\n  \
        hero_aibroker models --json | jq -r '.[] | select(.servable) | .id'")]
    Models,
    /// Providers, their instances (state, reason, cooldown) and circuits; check, reset, disable
    #[command(
        after_help = "Examples:\n  hero_aibroker providers\n  hero_aibroker providers --json\n  \
        hero_aibroker providers check openai\n  hero_aibroker providers reset openai-1"
    )]
    Providers {
        #[command(subcommand)]
        cmd: Option<ProvidersCommand>,
    },
    /// MCP tools of the aggregator (hero_aibroker_services): list, call, servers, audit
    #[command(
        after_help = "Examples:\n  hero_aibroker tools\n  hero_aibroker tools call echo --args '{\"text\": \"hi\"}'\n  \
        hero_aibroker tools servers\n  hero_aibroker tools calls --limit 5 --json"
    )]
    Tools {
        #[command(subcommand)]
        cmd: Option<ToolsCommand>,
    },
    /// Check the installation: sockets and permissions, services, config, each provider key
    #[command(
        after_help = "Examples:\n  hero_aibroker doctor\n  ADMIN_TOKEN=… hero_aibroker doctor --json\n\n\
        Exit code: 0 all good (warnings allowed), 1 a check failed, 2 the broker is not running."
    )]
    Doctor,
    /// Broker API keys (sk-hab-…): create, list, update, revoke
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Requests, tokens and cost from the ledger, grouped
    #[command(after_help = "Examples:\n  hero_aibroker usage\n  \
        hero_aibroker usage --by provider --since 24h\n  hero_aibroker usage --by key --json")]
    Usage(UsageArgs),
    /// Recent requests, newest first
    #[command(
        after_help = "Examples:\n  hero_aibroker logs\n  hero_aibroker logs --limit 5 --json\n  \
        hero_aibroker logs -f\n  hero_aibroker logs -f --json | jq -c '{model, status, cost_usd}'"
    )]
    Logs(LogsArgs),
    /// Runtime provider priorities (override the YAML priorities without a restart)
    #[command(subcommand)]
    Priority(PriorityCommand),
    /// Mother brokers this broker forwards to over TCP (cascade)
    #[command(subcommand)]
    Mothers(MothersCommand),
    /// How a request for MODEL would be routed: candidates in order, and why others were skipped
    #[command(after_help = "Examples:\n  hero_aibroker explain auto\n  \
        hero_aibroker explain gpt-4o-mini --endpoint chat --json")]
    Explain(ExplainArgs),
    /// Re-read modelsconfig.yml (an invalid file changes nothing)
    #[command(after_help = "Examples:\n  ADMIN_TOKEN=… hero_aibroker reload")]
    Reload,
    /// Chat: interactive (streamed answers, /commands, history), or one-shot with -p or stdin
    #[command(
        after_help = "Examples:\n  hero_aibroker chat\n  hero_aibroker chat -m gpt-4o-mini --system 'Be brief'\n  \
        hero_aibroker chat -p 'Say hi'\n  \
        echo 'Summarise this' | hero_aibroker chat -p - -m gpt-4o-mini\n  \
        echo hi | hero_aibroker chat -p - --json | jq -r '.choices[0].message.content'"
    )]
    Chat(ChatArgs),
    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  hero_aibroker completions bash > /etc/bash_completion.d/hero_aibroker\n  \
        hero_aibroker completions zsh > ~/.zfunc/_hero_aibroker\n  \
        hero_aibroker completions fish > ~/.config/fish/completions/hero_aibroker.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProvidersCommand {
    /// Test each key with a cheap models call made by the broker (needs the admin token)
    #[command(
        after_help = "Examples:\n  hero_aibroker providers check\n  hero_aibroker providers check groq --json"
    )]
    Check {
        /// Only this provider
        provider: Option<String>,
    },
    /// Return an instance to healthy and close its provider's circuits
    #[command(after_help = "Examples:\n  hero_aibroker providers reset openai-1")]
    Reset {
        /// The instance id (see `providers`)
        instance: String,
    },
    /// Stop routing to an instance until `providers reset`
    #[command(
        after_help = "Examples:\n  hero_aibroker providers disable openai-1 --reason 'billing'"
    )]
    Disable {
        /// The instance id (see `providers`)
        instance: String,
        /// Shown in `providers`
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ToolsCommand {
    /// Call a tool by name and print its result (needs the admin token when the broker has one)
    #[command(after_help = "Examples:\n  hero_aibroker tools call ping\n  \
        hero_aibroker tools call echo --args '{\"text\": \"hi\"}'\n  \
        echo '{\"model\": \"auto\"}' | hero_aibroker tools call explain_route --args -\n  \
        hero_aibroker tools call list_models --json | jq '.structuredContent'\n\n\
        Exit code: 0 the tool answered, 1 the tool reported an error or the call failed.")]
    Call {
        /// The tool's name as `hero_aibroker tools` lists it
        name: String,
        /// Arguments as a JSON object; `-` reads them from stdin
        #[arg(long, value_name = "JSON")]
        args: Option<String>,
    },
    /// Every configured MCP server: state, tools, restarts, errors
    #[command(
        after_help = "Examples:\n  hero_aibroker tools servers\n  hero_aibroker tools servers --json"
    )]
    Servers,
    /// The audit of tool calls, newest first
    #[command(
        after_help = "Examples:\n  hero_aibroker tools calls\n  hero_aibroker tools calls --tool echo --limit 5 --json"
    )]
    Calls {
        /// At most this many rows
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Only this server's calls
        #[arg(long)]
        server: Option<String>,
        /// Only this tool's calls
        #[arg(long)]
        tool: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once and never again
    #[command(
        after_help = "Examples:\n  hero_aibroker keys create ci --budget 5 --rpm 60\n  \
        hero_aibroker keys create agent --models gpt-4o-mini,auto --json"
    )]
    Create {
        /// A name for the key
        name: String,
        #[command(flatten)]
        limits: KeyLimits,
    },
    /// Every key (never the secrets)
    #[command(
        after_help = "Examples:\n  hero_aibroker keys list\n  hero_aibroker keys list --json"
    )]
    List,
    /// Change a key's name, allowed models, limits or budget
    #[command(
        after_help = "Examples:\n  hero_aibroker keys update KEY_ID --budget 10\n  \
        hero_aibroker keys update KEY_ID --clear rpm --clear budget_usd"
    )]
    Update {
        /// The key's id (see `keys list`)
        id: String,
        /// New name
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        limits: KeyLimits,
        /// Remove a limit: allowed_models, rpm, tpm, max_concurrent or budget_usd (repeatable)
        #[arg(long, value_name = "FIELD")]
        clear: Vec<String>,
    },
    /// Revoke a key at once
    #[command(after_help = "Examples:\n  hero_aibroker keys revoke KEY_ID")]
    Revoke {
        /// The key's id (see `keys list`)
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct KeyLimits {
    /// Models the key may use, comma-separated
    #[arg(long, value_delimiter = ',', value_name = "MODEL,…")]
    pub models: Option<Vec<String>>,
    /// Requests per minute
    #[arg(long)]
    pub rpm: Option<u64>,
    /// Tokens per minute (prompt + completion)
    #[arg(long)]
    pub tpm: Option<u64>,
    /// Requests of this key in flight at once
    #[arg(long, value_name = "N")]
    pub max_concurrent: Option<u64>,
    /// Budget in USD
    #[arg(long, value_name = "USD")]
    pub budget: Option<f64>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum By {
    Model,
    Provider,
    Key,
    Client,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Group rows by
    #[arg(long, value_enum, default_value_t = By::Model)]
    pub by: By,
    /// Only requests newer than this: 90s, 30m, 24h, 7d, 2w
    #[arg(long, value_name = "AGE", value_parser = crate::format::parse_age)]
    pub since: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// At most this many rows (max 1000)
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Keep printing new requests as they are recorded (one line each; NDJSON with --json),
    /// until Ctrl-C
    #[arg(short, long)]
    pub follow: bool,
}

#[derive(Debug, Subcommand)]
pub enum PriorityCommand {
    /// Runtime priority overrides
    #[command(after_help = "Examples:\n  hero_aibroker priority list")]
    List,
    /// Set a provider's priority for all its backends (lower is tried first)
    #[command(after_help = "Examples:\n  hero_aibroker priority set groq 1")]
    Set {
        provider: String,
        #[arg(allow_negative_numbers = true)]
        priority: i64,
    },
    /// Remove a provider's override; its YAML priorities apply again
    #[command(after_help = "Examples:\n  hero_aibroker priority clear groq")]
    Clear { provider: String },
}

#[derive(Debug, Subcommand)]
pub enum MothersCommand {
    /// The mothers, their health and how many models each serves
    #[command(after_help = "Examples:\n  hero_aibroker mothers list")]
    List,
    /// Register a mother broker's TCP listener (applied without restart)
    #[command(
        after_help = "Examples:\n  MOTHER_TOKEN=sk-hab-… hero_aibroker mothers add 10.0.0.2 33850 --token-env MOTHER_TOKEN\n  \
        hero_aibroker mothers add 127.0.0.1 33850 --label split-mode-mother --priority 1"
    )]
    Add {
        address: String,
        port: u16,
        #[arg(long)]
        label: Option<String>,
        /// Its backends' priority (lower is tried first; default 1)
        #[arg(long, allow_negative_numbers = true)]
        priority: Option<i64>,
        /// Register it disabled
        #[arg(long)]
        disabled: bool,
        /// Read the token to present to the mother (a broker key it issued, or its cascade
        /// token) from this environment variable: never on the command line
        #[arg(long, value_name = "VAR")]
        token_env: Option<String>,
    },
    /// Change a mother's fields (those given)
    #[command(
        after_help = "Examples:\n  hero_aibroker mothers update ai_broker_mother --priority 2\n  \
        hero_aibroker mothers update ai_broker_mother --enabled false"
    )]
    Update {
        id: String,
        #[arg(long)]
        address: Option<String>,
        #[arg(long)]
        port: Option<u16>,
        #[arg(long)]
        label: Option<String>,
        #[arg(long, allow_negative_numbers = true)]
        priority: Option<i64>,
        #[arg(long)]
        enabled: Option<bool>,
        #[arg(long, value_name = "VAR")]
        token_env: Option<String>,
    },
    /// Remove a mother (applied without restart)
    #[command(after_help = "Examples:\n  hero_aibroker mothers remove ai_broker_mother")]
    Remove { id: String },
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The model as a client would request it (a name, an alias, provider/model, auto)
    pub model: String,
    /// chat, completions or embeddings
    #[arg(long, default_value = "chat")]
    pub endpoint: String,
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// One-shot: answer this prompt and exit; `-` reads it from stdin. Without it the chat is
    /// interactive (or one-shot on piped stdin)
    #[arg(short, long, value_name = "PROMPT")]
    pub prompt: Option<String>,
    /// Stream the answer as it comes (the default)
    #[arg(long, overrides_with = "no_stream")]
    pub stream: bool,
    /// Wait for the whole answer and print it at once
    #[arg(long, overrides_with = "stream")]
    pub no_stream: bool,
    /// A system message sent before the conversation
    #[arg(long)]
    pub system: Option<String>,
    /// Sampling temperature
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Upper bound on the answer's tokens
    #[arg(long)]
    pub max_tokens: Option<u64>,
    /// Interactive: fold the model's reasoning into one dim line instead of showing it
    #[arg(long)]
    pub hide_reasoning: bool,
    /// Interactive: print answers as they come, without markdown styling or colours
    /// (also when NO_COLOR is set or stdout is not a terminal)
    #[arg(long)]
    pub plain: bool,
}
