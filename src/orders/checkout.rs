//! Checkout's business step: the order a buyer confirmed is priced again from the live
//! catalog (never from the form), built, screened before payment (a decline happens before
//! anyone is charged, for every provider alike) and written with its decision and payment
//! session in one transaction. The store's confirm handler parses the confirm page into
//! [`Confirmed`], calls [`screen`], opens the payment session and calls [`place`].

use crate::clock::Millis;
use crate::db::orders::{self, Order};
use crate::domain::order_token::order_token;
use crate::domain::{ids, Catalog, Coins, Currency, Money, OrderStatus, PaymentMethod, PriceQuote};
use crate::fulfillment::TikTokAccount;
use crate::orders::screening;
use crate::risk;
use crate::services::Services;

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The confirmed amount, currency or method can no longer be priced.
    #[error("the confirmed order can no longer be priced")]
    Unpriceable,
    /// An admin changed the prices after the confirm page was shown: `total` is the new one.
    #[error("prices changed: {coins} coins now cost {total}")]
    PriceChanged { coins: Coins, total: Money },
    /// A concurrent double submit won, yet its order cannot be read back.
    #[error("order vanished after a conflict")]
    Vanished,
    /// Five order numbers in a row were taken.
    #[error("could not allocate an order number")]
    NoOrderNumber,
}

/// What the buyer pays with a method: the coins' price plus the method's fee.
pub struct Charge {
    pub fee: Money,
    pub total: Money,
}

impl Charge {
    /// The effective price per coin, fee included.
    pub fn per_coin_text(&self, coins: Coins) -> String {
        let per_coin = self.total.to_major() / rust_decimal::Decimal::from(coins.get().max(1));
        let dp = self.total.currency().minor_units() + 3;
        format!(
            "{} {} per coin",
            per_coin.round_dp(dp).normalize(),
            self.total.currency().code()
        )
    }
}

/// The charge for `price` paid with `method`; `None` when it cannot be computed.
pub fn charge_for(
    services: &Services,
    catalog: &Catalog,
    price: &PriceQuote,
    method: PaymentMethod,
) -> Option<Charge> {
    let fee = catalog.fee(price.total, &services.settings.payments.fee_for(method))?;
    Some(Charge {
        fee,
        total: price.total.checked_add(fee)?,
    })
}

/// An order as the buyer confirmed it on the confirm page.
pub struct Confirmed {
    /// One per confirm page: a double submit creates one order.
    pub idempotency_key: String,
    pub coins: Coins,
    pub currency: Currency,
    pub method: PaymentMethod,
    /// The TikTok account the confirm page showed.
    pub account: TikTokAccount,
    pub email: String,
    /// The age the buyer confirmed being at least, and when (the confirm page's issue time).
    pub min_age: u32,
    pub age_confirmed_at: Millis,
    /// The total the confirm page showed, in minor units.
    pub shown_total_minor: i64,
    /// What the buyer's browser says it showed: a risk signal, never the price.
    pub client_amount_minor: Option<i64>,
    pub client_currency: Option<String>,
    pub client_ip: String,
}

/// An order priced and screened before payment, not yet written: [`place`] writes it. In
/// between, the caller opens its payment session (unless it is declined), so the order is
/// written once, with the session.
pub struct Screened {
    pub order: Order,
    assessment: risk::Assessment,
    signals: risk::Signals,
}

impl Screened {
    /// Screening refuses the order: it is written declined, and nobody is asked to pay.
    pub fn declined(&self) -> bool {
        self.assessment.decision == risk::Decision::Block
    }
}

/// Prices the confirmed order again, refuses it if the price changed since the confirm page,
/// and screens it.
pub async fn screen(
    services: &Services,
    c: Confirmed,
    now: Millis,
) -> Result<Screened, CheckoutError> {
    let live = services.live.current();
    let price = live
        .catalog
        .quote(c.coins, c.currency)
        .ok_or(CheckoutError::Unpriceable)?;
    // The method's fee as shown on the confirm page: recomputed here, never taken from the form.
    let charge =
        charge_for(services, &live.catalog, &price, c.method).ok_or(CheckoutError::Unpriceable)?;
    if charge.total.minor() != c.shown_total_minor {
        return Err(CheckoutError::PriceChanged {
            coins: c.coins,
            total: charge.total,
        });
    }
    let base_amount_minor = Money::round_from_major(price.base_total, live.catalog.base_currency())
        .map(|m| m.minor())
        .unwrap_or(i64::MAX);
    let order = Order {
        id: ids::new_id(),
        order_number: ids::new_order_number(),
        idempotency_key: c.idempotency_key,
        status: OrderStatus::AwaitingPayment,
        coins: c.coins,
        amount: charge.total,
        fee_minor: charge.fee.minor(),
        base_amount_minor,
        tiktok_username: c.account.username,
        tiktok_account_id: c.account.account_id,
        tiktok_display_name: c.account.display_name,
        email: c.email,
        payment_method: c.method,
        client_ip: c.client_ip,
        age_confirmed_at: Some(c.age_confirmed_at),
        min_age: Some(c.min_age as i64),
        client_amount_minor: c.client_amount_minor,
        client_currency: c.client_currency,
        provider: services.provider.name().into(),
        provider_session_id: None,
        refunded_minor: 0,
        created_at: now,
        updated_at: now,
        expires_at: now + services.settings.payments.order_expiry_minutes as i64 * 60_000,
        paid_at: None,
        delivered_at: None,
    };
    let (assessment, signals) = screening::assess_new_order(services, &order, now).await?;
    Ok(Screened {
        order,
        assessment,
        signals,
    })
}

/// Inserts the screened order with its assessment in one transaction, returning it with the
/// status the screening gave it; a double submit of the same quote returns the order the
/// first one made.
pub async fn place(state: &Services, screened: Screened) -> Result<Order, CheckoutError> {
    let Screened {
        mut order,
        assessment,
        signals,
    } = screened;
    let now = order.created_at;
    let token = order_token(&state.secrets.cookie_key, &order.idempotency_key);
    for _ in 0..5 {
        let mut tx = state.db.begin().await?;
        match orders::insert(&mut tx, &order, &ids::token_hash(&token)).await {
            Ok(true) => {
                let decided =
                    screening::before_payment(state, &mut tx, &order, &assessment, &signals, now)
                        .await?;
                tx.commit().await?;
                order.status = decided;
                return Ok(order);
            }
            // A concurrent double submit won the race: use its order.
            Ok(false) => {
                tx.rollback().await?;
                return orders::by_idempotency_key(state.db.pool(), &order.idempotency_key)
                    .await?
                    .ok_or_else(|| CheckoutError::Vanished);
            }
            // The 40-bit order number collided: draw another.
            Err(e) if crate::db::is_unique_violation(&e) => {
                tx.rollback().await?;
                order.order_number = ids::new_order_number();
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(CheckoutError::NoOrderNumber)
}
