//! The HTTP side of `ferry push`: one reqwest client (a pool of keep-alive connections to the
//! target), HTTPS through rustls with the ring provider, and every exchange turned into an
//! [`Answer`] for the classification table. Nothing here decides what an answer means.

use std::time::{Duration, Instant};

use super::classify::{Answer, Operation};
use crate::error::Error;

/// The guide's paths, under the base URL.
const VALIDATE: &str = "/v1/data-import/validate-account/";
const STAGE: &str = "/v1/data-import/account-import-process/create-or-update/";
const CREATE: &str = "/v1/data-import/account-import-process/process/";

/// The API key: the first line of `file`, else `FERRY_API_TOKEN`; none when neither is set.
pub fn api_key(file: Option<&std::path::Path>) -> Result<Option<String>, Error> {
    let key = match file {
        Some(path) => {
            let text = fs_err::read_to_string(path)?;
            Some(text.lines().next().unwrap_or_default().trim().to_owned())
        }
        None => std::env::var("FERRY_API_TOKEN").ok().map(|k| k.trim().to_owned()),
    };
    match key {
        Some(k) if k.is_empty() => Err(Error::usage(
            "the API key is empty",
            Some("put the key from `ferry token add` (or the platform) in the token file or FERRY_API_TOKEN"),
        )),
        other => Ok(other),
    }
}

/// Installs ring as the process's TLS provider, for every reqwest client (`ferry push`, and the
/// object storage of `--staging`). reqwest is built without a provider of its own (no aws-lc);
/// a second install is a no-op. rustls 0.23.48 deprecates ring's provider for lacking
/// post-quantum key exchange; ring is the choice made here (no C toolchain for aws-lc), and
/// classical X25519 is what the platform offers today.
pub(crate) fn install_ring() {
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client of one target API.
pub struct Client {
    http: reqwest::Client,
    /// The base URL without a trailing slash.
    base: String,
    /// `Token <key>`, when a key was given.
    authorization: Option<reqwest::header::HeaderValue>,
}

impl Client {
    /// A client of `base_url`. Plain `http://` is refused unless the host is a loopback
    /// address or `insecure_http` is set: the key and every customer's data would cross the
    /// network in clear. HTTPS trusts the system's roots, and the certificates of `ca_cert` (a
    /// PEM file: a company's own CA) besides.
    pub fn new(
        base_url: &str,
        key: Option<&str>,
        insecure_http: bool,
        ca_cert: Option<&std::path::Path>,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let url = reqwest::Url::parse(base_url).map_err(|e| {
            Error::usage(
                format!("--base-url {base_url:?} is not a URL: {e}"),
                Some("for example https://api.example.com"),
            )
        })?;
        let host = url.host_str().unwrap_or_default();
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        match url.scheme() {
            "https" => {}
            "http" if loopback || insecure_http => {}
            "http" => {
                return Err(Error::usage(
                    format!("--base-url {base_url} is plain HTTP to a host that is not this machine"),
                    Some("use https://, or pass --insecure-http if the network between is trusted"),
                ));
            }
            other => {
                return Err(Error::usage(format!("--base-url: unsupported scheme {other:?}"), Some("use https://")));
            }
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(Error::usage(format!("--base-url {base_url} has a query or fragment"), None));
        }
        let authorization = key
            .map(|k| {
                let mut v = reqwest::header::HeaderValue::from_str(&format!("Token {k}"))
                    .map_err(|_| Error::usage("the API key has characters a header cannot carry", None))?;
                v.set_sensitive(true);
                Ok::<_, Error>(v)
            })
            .transpose()?;
        install_ring();
        let mut builder = reqwest::Client::builder();
        if let Some(path) = ca_cert {
            let pem = fs_err::read(path)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Error::usage(format!("--ca-cert {}: not PEM certificates ({e})", path.display()), None))?;
            if certs.is_empty() {
                return Err(Error::usage(format!("--ca-cert {} holds no certificate", path.display()), None));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(64)
            .user_agent(concat!("ferry-push/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::usage(format!("cannot start the HTTP client: {e}"), None))?;
        Ok(Self { http, base: base_url.trim_end_matches('/').to_owned(), authorization })
    }

    /// The base URL, as accounts are recorded against it.
    pub fn target(&self) -> &str {
        &self.base
    }

    /// Sends one operation's body; the answer and how long it took.
    pub async fn send(&self, operation: Operation, body: String, request_id: &str) -> (Answer, Duration) {
        let path = match operation {
            Operation::Validate => VALIDATE,
            Operation::Stage => STAGE,
            Operation::Create => CREATE,
        };
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.exchange(request, request_id).await
    }

    /// Looks an account up through the transfer status endpoint.
    pub async fn status(&self, supplier: &str, external: &str, request_id: &str) -> (Answer, Duration) {
        let mut url = reqwest::Url::parse(&format!("{}/", self.base)).expect("checked when the client was made");
        url.path_segments_mut().expect("an http(s) URL has a path").pop_if_empty().extend([
            "v1",
            "data-import",
            "account-transfer-status",
            supplier,
            external,
            "",
        ]);
        self.exchange(self.http.get(url), request_id).await
    }

    async fn exchange(&self, request: reqwest::RequestBuilder, request_id: &str) -> (Answer, Duration) {
        let mut request = request.header("x-request-id", request_id);
        if let Some(a) = &self.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, a.clone());
        }
        let started = Instant::now();
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match response.text().await {
                    Ok(body) => Answer::Response { status, body, retry_after },
                    // The status came, the body did not: the request was received.
                    Err(_) => Answer::Lost,
                }
            }
            Err(e) if e.is_connect() => Answer::NotSent,
            Err(_) => Answer::Lost,
        };
        (answer, started.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn made(url: &str, insecure_http: bool) -> Result<Client, Error> {
        Client::new(url, Some("k"), insecure_http, None, Duration::from_secs(1))
    }

    #[test]
    fn plain_http_only_to_this_machine_unless_asked() {
        for url in [
            "https://import.example.de",
            "https://import.example.de/base/",
            "http://127.0.0.1:8080",
            "http://[::1]:80",
            "http://localhost",
        ] {
            assert!(made(url, false).is_ok(), "{url}");
        }
        for url in ["http://import.example.de", "http://10.0.0.1:8080", "http://192.0.2.1"] {
            let e = made(url, false).err().unwrap_or_else(|| panic!("{url} was accepted")).to_string();
            assert!(e.contains("plain HTTP"), "{url}: {e}");
            assert!(made(url, true).is_ok(), "{url} with --insecure-http");
        }
        for url in ["ftp://x", "not a url", "https://x/?q=1"] {
            assert!(made(url, true).is_err(), "{url}");
        }
        assert_eq!(made("https://import.example.de/base/", false).unwrap().target(), "https://import.example.de/base");
    }

    #[test]
    fn a_key_a_header_cannot_carry_is_refused() {
        assert!(Client::new("https://x", Some("a\nb"), false, None, Duration::from_secs(1)).is_err());
    }
}
