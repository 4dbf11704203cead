//! Configuration: the operator's `modelsconfig.yml` ([`models`]) and the server settings read
//! from the environment ([`settings`]), both loaded in two phases (deserialize a raw form whose
//! errors name the key path, then validate), and the routing snapshot built from them
//! ([`registry`]): models, backends, providers and their key instances, swapped whole on reload.

pub mod models;
pub mod registry;
pub mod settings;

pub use models::{BackendConfig, ModelConfig, ModelsConfig, ProviderConfig, Tier};
pub use settings::{Settings, Strategy};

use std::path::PathBuf;

/// Why a configuration could not be loaded. Every message names the file and the key path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// YAML syntax, unknown keys, missing fields, wrong types: the message names the key
    /// path and line.
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}
