//! The OpenAI REST endpoints the broker relays upstream: what the client called, which path
//! a provider serves it on, and what `auto` needs of a model for it.

/// The REST endpoints that relay to upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
    Embeddings,
    /// `POST /v1/audio/speech` (text to speech).
    Speech,
    /// `POST /v1/audio/transcriptions` (speech to text).
    Transcriptions,
    /// `POST /v1/audio/translations` (speech to English text).
    Translations,
}

impl Endpoint {
    /// Path below the provider's base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
            Endpoint::Speech => "/audio/speech",
            Endpoint::Transcriptions => "/audio/transcriptions",
            Endpoint::Translations => "/audio/translations",
        }
    }

    /// Name used in the ledger: `chat`, `completions`, `embeddings`.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Speech => "audio.speech",
            Endpoint::Transcriptions => "audio.transcriptions",
            Endpoint::Translations => "audio.translations",
        }
    }

    /// Every endpoint, in a fixed order (an index for per-endpoint tables).
    pub const ALL: [Endpoint; 6] = [
        Endpoint::Chat,
        Endpoint::Completions,
        Endpoint::Embeddings,
        Endpoint::Speech,
        Endpoint::Transcriptions,
        Endpoint::Translations,
    ];

    /// This endpoint's place in [`Endpoint::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The speech endpoints: priced per character or per minute of audio, not per token.
    pub fn is_audio(self) -> bool {
        matches!(
            self,
            Endpoint::Speech | Endpoint::Transcriptions | Endpoint::Translations
        )
    }

    /// The capability `auto` requires of a model for this endpoint.
    pub fn capability(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Speech => "tts",
            Endpoint::Transcriptions | Endpoint::Translations => "stt",
        }
    }
}
