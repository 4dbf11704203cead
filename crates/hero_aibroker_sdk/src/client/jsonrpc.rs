//! [`RpcClient`]: JSON-RPC 2.0 over `POST /rpc`, implementing jsonrpsee's `ClientT` so the
//! generated `HeroAiBrokerApiClient` methods run on it.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use jsonrpsee::core::client::{BatchEntry, BatchResponse, ClientT, Error as RpcError};
use jsonrpsee::core::params::BatchRequestBuilder;
use jsonrpsee::core::traits::ToRpcParams;
use jsonrpsee::types::{Id, InvalidRequestId, ResponseSuccess};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::transport::{Transport, build_request};
use super::{ClientError, snippet};

/// Default deadline of an RPC call: admin calls are quick, and a CLI should not hang forever.
const RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// JSON-RPC 2.0 over `POST /rpc` on `rpc.sock`. Use the generated API methods:
/// `use hero_aibroker_sdk::rpc::HeroAiBrokerApiClient; client.health().await?`.
#[derive(Clone)]
pub struct RpcClient {
    transport: Transport,
    token: Option<Arc<str>>,
    next_id: Arc<AtomicU64>,
}

impl fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcClient")
            .field("socket", &self.transport.path())
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// One JSON-RPC call as sent; `id: None` makes it a notification.
#[derive(Serialize)]
struct Call<'a> {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a RawValue>,
}

type RpcResponse<'a> = jsonrpsee::types::Response<'a, &'a RawValue>;

impl RpcClient {
    /// A client for the socket at `path`; nothing is dialled until the first call.
    pub fn new(path: impl AsRef<Path>) -> Self {
        RpcClient {
            transport: Transport::new(path.as_ref(), Some(RPC_TIMEOUT)),
            token: None,
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Like [`new`](Self::new), but dials once so a missing or refused socket fails here.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let client = RpcClient::new(path);
        let sender = client.transport.connect().await?;
        client.transport.checkin(sender);
        Ok(client)
    }

    /// Sends `Authorization: Bearer <token>`, which mutating methods need when the broker has
    /// an admin token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Arc::from(token.into()));
        self
    }

    /// Deadline per call (default 30 s); `None` waits forever.
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.transport = self.transport.with_timeout(timeout);
        self
    }

    /// The socket this client talks to.
    pub fn socket_path(&self) -> &Path {
        self.transport.path()
    }

    fn ids(&self, n: u64) -> u64 {
        self.next_id.fetch_add(n, Ordering::Relaxed)
    }

    /// Posts one JSON-RPC payload; a transport failure becomes `ClientError::Transport`.
    async fn post(&self, payload: Vec<u8>) -> Result<(StatusCode, Bytes), RpcError> {
        let req = build_request(Method::POST, "/rpc", self.token.as_deref(), Some(payload))
            .map_err(transport_error)?;
        self.transport.exchange(req).await.map_err(transport_error)
    }
}

fn transport_error(e: ClientError) -> RpcError {
    match e {
        ClientError::Timeout { .. } => RpcError::RequestTimeout,
        e => RpcError::Transport(Box::new(e)),
    }
}

/// Decodes an answer, blaming the HTTP status when the body is no JSON-RPC at all (a proxy
/// page, a 404 from something that is not the broker).
fn decode<'a, T: serde::Deserialize<'a>>(
    status: StatusCode,
    body: &'a [u8],
) -> Result<T, RpcError> {
    serde_json::from_slice(body).map_err(|e| {
        if status.is_success() {
            RpcError::ParseError(e)
        } else {
            transport_error(ClientError::Unexpected {
                status: status.as_u16(),
                body: snippet(body),
            })
        }
    })
}

impl ClientT for RpcClient {
    async fn notification<Params>(&self, method: &str, params: Params) -> Result<(), RpcError>
    where
        Params: ToRpcParams + Send,
    {
        let params = params.to_rpc_params()?;
        let call = Call {
            jsonrpc: "2.0",
            id: None,
            method,
            params: params.as_deref(),
        };
        let (status, body) = self.post(serde_json::to_vec(&call)?).await?;
        if status.is_success() {
            return Ok(());
        }
        // A rejected notification (body too large, bad JSON) still carries an error object.
        let resp: RpcResponse<'_> = decode(status, &body)?;
        ResponseSuccess::try_from(resp)?;
        Ok(())
    }

    async fn request<R, Params>(&self, method: &str, params: Params) -> Result<R, RpcError>
    where
        R: DeserializeOwned,
        Params: ToRpcParams + Send,
    {
        let params = params.to_rpc_params()?;
        let id = self.ids(1);
        let call = Call {
            jsonrpc: "2.0",
            id: Some(id),
            method,
            params: params.as_deref(),
        };
        let (status, body) = self.post(serde_json::to_vec(&call)?).await?;
        let resp: RpcResponse<'_> = decode(status, &body)?;
        let success = ResponseSuccess::try_from(resp)?;
        if success.id != Id::Number(id) {
            return Err(InvalidRequestId::NotPendingRequest(success.id.to_string()).into());
        }
        Ok(serde_json::from_str(success.result.get())?)
    }

    async fn batch_request<'a, R>(
        &self,
        batch: BatchRequestBuilder<'a>,
    ) -> Result<BatchResponse<'a, R>, RpcError>
    where
        R: DeserializeOwned + fmt::Debug + 'a,
    {
        let calls = batch.build()?;
        let first = self.ids(calls.len() as u64);
        let payload: Vec<Call<'_>> = calls
            .iter()
            .zip(first..)
            .map(|((method, params), id)| Call {
                jsonrpc: "2.0",
                id: Some(id),
                method,
                params: params.as_deref(),
            })
            .collect();
        let (status, body) = self.post(serde_json::to_vec(&payload)?).await?;

        let answers: Vec<RpcResponse<'_>> = match decode(status, &body) {
            Ok(answers) => answers,
            // The whole batch was refused (parse error, too large): one error object.
            Err(e) => {
                let single: RpcResponse<'_> = decode(status, &body).map_err(|_| e)?;
                ResponseSuccess::try_from(single)?;
                return Err(RpcError::Custom(
                    "the broker answered a batch with a single result".to_owned(),
                ));
            }
        };
        // Answers may come in any order; put them back in request order.
        let mut by_id: HashMap<u64, RpcResponse<'_>> = HashMap::with_capacity(answers.len());
        for answer in answers {
            match answer.id.try_parse_inner_as_number() {
                Ok(id) => {
                    by_id.insert(id, answer);
                }
                Err(_) => {
                    // An error about the batch itself (id null) fails all of it.
                    ResponseSuccess::try_from(answer)?;
                }
            }
        }
        let mut entries: Vec<BatchEntry<'a, R>> = Vec::with_capacity(calls.len());
        let (mut ok, mut failed) = (0, 0);
        for id in first..first + calls.len() as u64 {
            let answer = by_id.remove(&id).ok_or_else(|| {
                RpcError::Custom(format!("the batch answer has no response for id {id}"))
            })?;
            match ResponseSuccess::try_from(answer) {
                Ok(success) => {
                    ok += 1;
                    entries.push(Ok(serde_json::from_str(success.result.get())?));
                }
                Err(error) => {
                    failed += 1;
                    entries.push(Err(error));
                }
            }
        }
        Ok(BatchResponse::new(ok, entries, failed))
    }
}
