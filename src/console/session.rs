//! Staff sessions: a random token in a cookie, the session itself in the database (so any
//! instance serves any request and signing out really ends it).
//!
//! The cookie is `__Host-cf_staff`: `Secure`, `Path=/`, no `Domain` — so no other site or
//! subdomain can set or read it — `HttpOnly` and `SameSite=Strict`. Browsers only accept a
//! `__Host-` cookie with `Secure`, so when cookies are not `Secure` (plain-HTTP development,
//! the tests: neither built-in TLS nor `http.secure_cookies`) the cookie is named `cf_staff`
//! without the prefix instead. Whether cookies are `Secure` comes from the one cookie policy
//! every cookie uses (`AppState::cookie_policy`).
//!
//! Forms carry a CSRF token bound to the session: an HMAC, under the shop's cookie key, of the
//! session token. It changes with every new session and is useless with any other.

use super::ConsoleError;
use crate::db::staff::StaffMember;
use crate::db::staff_sessions::{self, NewSession, SessionRow, Stage};
use crate::domain::ids;
use crate::web::state::AppState;
use crate::web::AppError;
use crate::web::ClientIp;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use sqlx::AnyConnection;

pub const COOKIE_SECURE: &str = "__Host-cf_staff";
pub const COOKIE_PLAIN: &str = "cf_staff";
/// How long the second sign-in step may take.
pub const TOTP_STEP_MS: i64 = 5 * 60_000;

pub fn cookie_name(state: &AppState) -> &'static str {
    if state.cookie_policy().secure {
        COOKIE_SECURE
    } else {
        COOKIE_PLAIN
    }
}

/// The session cookie for a new token.
pub fn cookie(state: &AppState, token: &str) -> Cookie<'static> {
    Cookie::build(cookie_name(state), token.to_owned())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.cookie_policy().secure)
        .finish()
}

/// A cookie that tells the browser to forget the session.
pub fn removal_cookie(state: &AppState) -> Cookie<'static> {
    let mut c = cookie(state, "");
    c.make_removal();
    c
}

/// The raw session token the request carries, if any.
pub fn token_of(req: &HttpRequest, state: &AppState) -> Option<String> {
    req.cookie(cookie_name(state))
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The CSRF token bound to a session token.
pub fn csrf_for(state: &AppState, token: &str) -> String {
    crate::domain::mac::hex_mac(
        state.secrets.cookie_key.expose().as_bytes(),
        &[b"console-csrf:", token.as_bytes()],
    )
}

/// Creates a session and returns its token (for the cookie). The caller's transaction.
pub async fn start(
    conn: &mut AnyConnection,
    staff: &StaffMember,
    stage: Stage,
    req: &HttpRequest,
    now: i64,
) -> Result<String, sqlx::Error> {
    let token = ids::new_secret_token();
    let agent = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    staff_sessions::create(
        conn,
        NewSession {
            id_hash: &ids::token_hash(&token),
            staff_id: &staff.id,
            stage,
            client_ip: &ClientIp::from_request(req).to_string(),
            user_agent: agent,
        },
        now,
    )
    .await?;
    Ok(token)
}

/// Ends whatever session the request carries (sign-in rotates it; sign-out ends it).
pub async fn end_current(
    conn: &mut AnyConnection,
    req: &HttpRequest,
    state: &AppState,
) -> Result<(), sqlx::Error> {
    match token_of(req, state) {
        Some(token) => staff_sessions::delete(conn, &ids::token_hash(&token)).await,
        None => Ok(()),
    }
}

/// The request's session, loaded and checked.
#[derive(Debug, Clone)]
pub struct Current {
    pub staff: StaffMember,
    pub stage: Stage,
    token: String,
}

impl Current {
    /// The fully signed-in session just started with `token` (after a change that ended the
    /// old one).
    pub fn signed_in(staff: StaffMember, token: String) -> Current {
        Current {
            staff,
            stage: Stage::Active,
            token,
        }
    }

    pub fn csrf(&self, state: &AppState) -> String {
        csrf_for(state, &self.token)
    }

    pub fn id_hash(&self) -> String {
        ids::token_hash(&self.token)
    }

    pub fn actor(&self) -> String {
        self.staff.actor()
    }

    /// Admins must use two-factor sign-in; until they have enrolled they can do nothing else.
    pub fn owes_totp_enrolment(&self) -> bool {
        self.staff.is_admin() && !self.staff.totp_enabled()
    }
}

fn state_of(req: &HttpRequest) -> Result<web::Data<AppState>, ConsoleError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| {
            ConsoleError::Web(AppError::Unexpected(anyhow::anyhow!(
                "AppState is not registered"
            )))
        })
}

/// Loads the session of `stage`, enforcing its timeouts. An ended session is deleted.
async fn load(req: &HttpRequest, want: Stage) -> Result<Current, ConsoleError> {
    let state = state_of(req)?;
    let Some(token) = token_of(req, &state) else {
        return Err(ConsoleError::SignIn { expired: false });
    };
    let id_hash = ids::token_hash(&token);
    let Some(SessionRow {
        staff,
        stage,
        created_at,
        last_seen_at,
    }) = staff_sessions::find(state.db.pool(), &id_hash).await?
    else {
        return Err(ConsoleError::SignIn { expired: false });
    };
    let now = state.now_ms();
    let s = &state.settings.console;
    let idle_ms = s.idle_timeout_minutes as i64 * 60_000;
    let absolute_ms = s.absolute_timeout_hours as i64 * 3_600_000;
    let ended = match stage {
        Stage::Active => now - last_seen_at > idle_ms || now - created_at > absolute_ms,
        Stage::Totp => now - created_at > TOTP_STEP_MS,
    };
    if ended {
        let mut conn = state.db.pool().acquire().await?;
        staff_sessions::delete(&mut conn, &id_hash).await?;
        return Err(ConsoleError::SignIn { expired: true });
    }
    if stage != want {
        return Err(ConsoleError::SignIn { expired: false });
    }
    if stage == Stage::Active {
        staff_sessions::touch(state.db.pool(), &id_hash, now).await?;
    }
    Ok(Current {
        staff,
        stage,
        token,
    })
}

/// Any signed-in staff member, including an admin who still owes two-factor enrolment (for
/// the enrolment and account pages and signing out).
pub struct SignedIn(pub Current);

/// A signed-in staff member who may use the console.
pub struct Staff(pub Current);

/// An admin (agents get 403).
pub struct Admin(pub Current);

/// Half-way through sign-in: the password was right, the two-factor code is awaited.
pub struct PendingTotp(pub Current);

macro_rules! extractor {
    ($name:ident, $body:expr) => {
        impl FromRequest for $name {
            type Error = ConsoleError;
            type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

            fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
                let req = req.clone();
                Box::pin(async move { $body(req).await })
            }
        }
    };
}

extractor!(SignedIn, |req: HttpRequest| async move {
    load(&req, Stage::Active).await.map(SignedIn)
});

extractor!(Staff, |req: HttpRequest| async move {
    let current = load(&req, Stage::Active).await?;
    if current.owes_totp_enrolment() {
        return Err(ConsoleError::EnrolTotp);
    }
    Ok(Staff(current))
});

extractor!(Admin, |req: HttpRequest| async move {
    let current = load(&req, Stage::Active).await?;
    if current.owes_totp_enrolment() {
        return Err(ConsoleError::EnrolTotp);
    }
    if !current.staff.is_admin() {
        return Err(ConsoleError::Web(AppError::Forbidden(
            "This page is for admins. Ask an admin if you need something changed here.".into(),
        )));
    }
    Ok(Admin(current))
});

extractor!(PendingTotp, |req: HttpRequest| async move {
    load(&req, Stage::Totp).await.map(PendingTotp)
});
