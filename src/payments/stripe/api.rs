//! Calls to Stripe's API: form-encoded bodies (`a[b][0]=c`), the secret key as a bearer
//! token, an `Idempotency-Key` on every POST, and retries where Stripe's own libraries retry:
//! a connection failure or timeout, `Stripe-Should-Retry: true`, 409, 429 and 5xx, unless
//! Stripe says `Stripe-Should-Retry: false`. A POST is only retried with its idempotency key, so
//! a retry can never create a second object.

use crate::config::Secret;
use serde_json::Value;
use std::time::Duration;

/// Stripe's error object (`{"error": {"type", "code", "decline_code", "message"}}`) or a
/// failure to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status, or none when Stripe was not reached (timeout, connection refused).
    pub status: Option<u16>,
    pub kind: Option<String>,
    pub code: Option<String>,
    pub decline_code: Option<String>,
    pub message: String,
}

impl ApiError {
    /// Worth trying again later (Stripe down, overloaded), as opposed to a refusal.
    pub fn is_unavailable(&self) -> bool {
        match self.status {
            None => true,
            Some(s) => s == 429 || s >= 500,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "Stripe answered {s}")?,
            None => f.write_str("Stripe could not be reached")?,
        }
        if let Some(code) = self.decline_code.as_deref().or(self.code.as_deref()) {
            write!(f, " ({code})")?;
        }
        write!(f, ": {}", self.message)
    }
}

pub struct Api {
    pub base: String,
    /// Stripe's Files API host (`https://files.stripe.com`): uploads go there, not to `base`.
    pub files_base: String,
    pub key: Secret,
    pub http: reqwest::Client,
    pub max_attempts: u32,
    /// The first retry's wait; doubled per attempt.
    pub backoff: Duration,
}

/// Form-encodes parameters in Stripe's bracket notation. The order is kept (Stripe does not
/// need it, but a log or test reads better).
pub fn encode(params: &[(String, String)]) -> String {
    serde_urlencoded::to_string(params).unwrap_or_default()
}

/// A file to upload (`multipart/form-data`, RFC 7578), as Stripe's Files API takes it.
pub struct Upload<'a> {
    /// The other form fields (`purpose`).
    pub fields: &'a [(String, String)],
    pub filename: &'a str,
    pub content_type: &'a str,
    pub bytes: &'a [u8],
}

/// The multipart body and its `content-type`. The boundary is derived from the content, so
/// the same upload is the same request byte for byte (a retry included), and it is checked
/// not to occur inside the file.
pub fn multipart(upload: &Upload<'_>) -> (String, Vec<u8>) {
    use sha2::{Digest, Sha256};
    let mut salt = 0u32;
    let boundary = loop {
        let digest = Sha256::new()
            .chain_update(salt.to_be_bytes())
            .chain_update(upload.bytes)
            .finalize();
        let b = format!("coinfront-{}", hex::encode(&digest[..12]));
        let clash = upload.bytes.windows(b.len()).any(|w| w == b.as_bytes())
            || upload.fields.iter().any(|(_, v)| v.contains(&b));
        if !clash {
            break b;
        }
        salt += 1;
    };
    // Names and the file name are ours (ASCII without quotes); strip anything else anyway.
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\'))
            .collect()
    };
    let mut body = Vec::with_capacity(upload.bytes.len() + 512);
    for (name, value) in upload.fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n{value}\r\n",
                clean(name)
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
            clean(upload.filename),
            clean(upload.content_type)
        )
        .as_bytes(),
    );
    body.extend_from_slice(upload.bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

enum Body {
    Form(Vec<(String, String)>),
    Multipart {
        content_type: String,
        bytes: Vec<u8>,
    },
}

impl Api {
    pub async fn post(
        &self,
        path: &str,
        params: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base.trim_end_matches('/'));
        let body = Body::Form(params.to_vec());
        self.call(
            reqwest::Method::POST,
            &url,
            path,
            body,
            Some(idempotency_key),
        )
        .await
    }

    /// Uploads a file to the Files API (`POST {files_base}/v1/files`), retried like any POST.
    pub async fn upload(
        &self,
        upload: &Upload<'_>,
        idempotency_key: &str,
    ) -> Result<Value, ApiError> {
        let path = "/v1/files";
        let url = format!("{}{path}", self.files_base.trim_end_matches('/'));
        let (content_type, bytes) = multipart(upload);
        let body = Body::Multipart {
            content_type,
            bytes,
        };
        self.call(
            reqwest::Method::POST,
            &url,
            path,
            body,
            Some(idempotency_key),
        )
        .await
    }

    pub async fn get(&self, path: &str, query: &[(String, String)]) -> Result<Value, ApiError> {
        let url = format!("{}{path}", self.base.trim_end_matches('/'));
        let body = Body::Form(query.to_vec());
        self.call(reqwest::Method::GET, &url, path, body, None)
            .await
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        path: &str,
        body: Body,
        idempotency_key: Option<&str>,
    ) -> Result<Value, ApiError> {
        let mut attempt = 1u32;
        loop {
            let mut req = self
                .http
                .request(method.clone(), url)
                .bearer_auth(self.key.expose());
            req = match &body {
                Body::Form(params) if method == reqwest::Method::GET => {
                    if params.is_empty() {
                        req
                    } else {
                        req.query(params)
                    }
                }
                Body::Form(params) => req
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(encode(params)),
                Body::Multipart {
                    content_type,
                    bytes,
                } => req.header("content-type", content_type).body(bytes.clone()),
            };
            if let Some(key) = idempotency_key {
                req = req.header("Idempotency-Key", key);
            }
            let (result, retry) = match req.send().await {
                Err(e) => {
                    let err = ApiError {
                        status: None,
                        kind: None,
                        code: None,
                        decline_code: None,
                        message: if e.is_timeout() {
                            "timed out".into()
                        } else {
                            "connection failed".into()
                        },
                    };
                    // Safe to repeat: a GET changes nothing, a POST carries its idempotency key.
                    (Err(err), true)
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let should_retry = resp
                        .headers()
                        .get("stripe-should-retry")
                        .and_then(|v| v.to_str().ok())
                        .map(|v| v == "true");
                    // Bounded: Stripe's objects are small; anything larger is not Stripe.
                    let bytes = resp.bytes().await.unwrap_or_default();
                    let json: Value = if bytes.len() <= 1 << 20 {
                        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
                    } else {
                        Value::Null
                    };
                    if (200..300).contains(&status) && json.is_object() {
                        return Ok(json);
                    }
                    let e = &json["error"];
                    let text = |k: &str| e[k].as_str().map(|s| s.chars().take(300).collect());
                    let err = ApiError {
                        status: Some(status),
                        kind: text("type"),
                        code: text("code"),
                        decline_code: text("decline_code"),
                        message: text("message").unwrap_or_else(|| {
                            if (200..300).contains(&status) {
                                "an answer that is not a Stripe object".into()
                            } else {
                                "no error message".into()
                            }
                        }),
                    };
                    let retry = match should_retry {
                        Some(told) => told,
                        None => status == 409 || status == 429 || status >= 500,
                    };
                    (Err(err), retry)
                }
            };
            let retry = retry && (method == reqwest::Method::GET || idempotency_key.is_some());
            match result {
                Err(e) if retry && attempt < self.max_attempts => {
                    tracing::warn!(path, attempt, error = %e, "Stripe call failed; retrying");
                    let wait = self
                        .backoff
                        .saturating_mul(1u32 << (attempt - 1).min(4))
                        .min(Duration::from_secs(2));
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_and_spaces_are_form_encoded() {
        let p = vec![
            (
                "line_items[0][price_data][product_data][name]".to_owned(),
                "700 coins for @x & y".to_owned(),
            ),
            ("payment_method_types[]".to_owned(), "card".to_owned()),
        ];
        assert_eq!(
            encode(&p),
            "line_items%5B0%5D%5Bprice_data%5D%5Bproduct_data%5D%5Bname%5D=700+coins+for+%40x+%26+y&payment_method_types%5B%5D=card"
        );
    }

    #[test]
    fn an_upload_is_one_field_and_one_file_between_boundaries() {
        let fields = [("purpose".to_owned(), "dispute_evidence".to_owned())];
        let upload = Upload {
            fields: &fields,
            filename: "doc \"1\".pdf",
            content_type: "application/pdf",
            bytes: b"%PDF-1.4 body",
        };
        let (content_type, body) = multipart(&upload);
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .unwrap();
        let text = String::from_utf8(body.clone()).unwrap();
        assert_eq!(
            text,
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\ndispute_evidence\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"doc1.pdf\"\r\nContent-Type: application/pdf\r\n\r\n\
                 %PDF-1.4 body\r\n--{boundary}--\r\n"
            )
        );
        assert_eq!(
            multipart(&upload).1,
            body,
            "the same upload, the same bytes"
        );
    }

    #[test]
    fn only_unreachable_overloaded_or_failing_stripe_counts_as_unavailable() {
        let e = |status| ApiError {
            status,
            kind: None,
            code: None,
            decline_code: None,
            message: String::new(),
        };
        assert!(e(None).is_unavailable());
        assert!(e(Some(429)).is_unavailable());
        assert!(e(Some(503)).is_unavailable());
        assert!(!e(Some(400)).is_unavailable());
        assert!(!e(Some(402)).is_unavailable());
    }
}
