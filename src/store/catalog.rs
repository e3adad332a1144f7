//! The catalog page, which is also the checkout form: packages, a custom amount, the currency,
//! and who to top up. `POST /checkout` re-renders it with a message beside each bad field.

use crate::domain::{Catalog, Coins, Currency};
use crate::live_settings::Snapshot;
use crate::web::state::AppState;
use crate::web::{render, CsrfToken, Meta};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;
use std::sync::Arc;

pub use crate::domain::pricing::{price_rows, price_texts, PriceRow};

pub struct PackageView<'a> {
    pub row: &'a PriceRow,
    pub checked: bool,
}

pub struct OptionView {
    pub value: String,
    pub label: String,
    pub hint: String,
    pub selected: bool,
}

/// What the buyer typed, kept when the form comes back with errors.
#[derive(Default, Clone)]
pub struct CheckoutValues {
    pub package: String,
    pub coins: String,
    pub tiktok_username: String,
    pub email: String,
    pub payment_method: String,
    pub age_confirmed: bool,
}

#[derive(Default)]
pub struct FieldErrors {
    pub amount: Option<String>,
    pub tiktok_username: Option<String>,
    pub email: Option<String>,
    pub currency: Option<String>,
    pub payment_method: Option<String>,
    pub age: Option<String>,
}

/// One line of the error summary at the top of the form: the message, linking to its field.
pub struct SummaryLine {
    pub href: String,
    pub message: String,
}

impl FieldErrors {
    pub fn any(&self) -> bool {
        self.amount.is_some()
            || self.tiktok_username.is_some()
            || self.email.is_some()
            || self.currency.is_some()
            || self.payment_method.is_some()
            || self.age.is_some()
    }
}

#[derive(Template)]
#[template(path = "catalog.html")]
pub struct CatalogPage {
    pub meta: Meta,
    pub currency: String,
    pub currencies: Vec<OptionView>,
    /// The prices in force when the page was asked for (its packages are read from here).
    live: Arc<Snapshot>,
    price_currency: Currency,
    pub methods: Vec<OptionView>,
    pub custom_min: String,
    pub custom_max: String,
    pub custom_checked: bool,
    /// The price of the custom amount the buyer asked about.
    pub custom_quote: Option<(String, String)>,
    pub min_age: u32,
    pub values: CheckoutValues,
    pub errors: FieldErrors,
}

#[derive(Deserialize)]
pub struct CatalogQuery {
    currency: Option<String>,
    coins: Option<String>,
}

impl CatalogPage {
    /// The packages in the page's currency, the buyer's choice checked.
    pub fn packages(&self) -> Vec<PackageView<'_>> {
        self.live
            .price_rows
            .get(&self.price_currency)
            .map(|rows| {
                rows.iter()
                    .map(|row| PackageView {
                        row,
                        checked: self.values.package == row.coins.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The id of the first package's radio button (where an amount error that is not about
    /// the custom box points).
    pub fn first_package_id(&self) -> String {
        self.packages()
            .first()
            .map(|p| format!("package-{}", p.row.coins))
            .unwrap_or_else(|| "package-custom".into())
    }

    /// Every error, in the order of the fields, each linking to the field it is about (the
    /// GOV.UK error summary).
    pub fn error_summary(&self) -> Vec<SummaryLine> {
        let amount_href = if self.custom_checked {
            "#coins".to_owned()
        } else {
            format!("#{}", self.first_package_id())
        };
        let first_method = self
            .methods
            .first()
            .map(|m| format!("#method-{}", m.value))
            .unwrap_or_default();
        [
            (&self.errors.currency, "#currency-pick".to_owned()),
            (&self.errors.amount, amount_href),
            (&self.errors.tiktok_username, "#tiktok_username".to_owned()),
            (&self.errors.email, "#email".to_owned()),
            (&self.errors.payment_method, first_method),
            (&self.errors.age, "#age_confirmed".to_owned()),
        ]
        .into_iter()
        .filter_map(|(e, href)| {
            e.as_ref().map(|m| SummaryLine {
                href,
                message: m.clone(),
            })
        })
        .collect()
    }

    /// The page as `live` prices it: the caller's snapshot, so one request sees one catalog.
    pub fn new(
        state: &AppState,
        live: Arc<Snapshot>,
        csrf: &str,
        currency: Currency,
        values: CheckoutValues,
        mut errors: FieldErrors,
    ) -> Self {
        let catalog = &live.catalog;
        let custom_checked = values.package == "custom"
            || (values.package.is_empty() && !values.coins.trim().is_empty());
        let currencies = catalog
            .currencies()
            .into_iter()
            .map(|c| OptionView {
                value: c.code().into(),
                label: format!("{} ({})", c.code(), c.symbol()),
                hint: String::new(),
                selected: c == currency,
            })
            .collect();
        let selected_method = if values.payment_method.is_empty() {
            "card"
        } else {
            values.payment_method.as_str()
        };
        let methods = state
            .settings
            .payments
            .methods_for(currency)
            .into_iter()
            .map(|m| OptionView {
                value: m.as_str().into(),
                label: m.label().into(),
                hint: m.hint().into(),
                selected: m.as_str() == selected_method,
            })
            .collect();
        let mut custom_quote = None;
        if custom_checked && errors.amount.is_none() {
            match catalog.parse_custom_amount(&values.coins) {
                Ok(coins) => custom_quote = catalog.quote(coins, currency).map(|q| price_texts(&q)),
                Err(e) => errors.amount = Some(e.to_string()),
            }
        }
        let (min, max) = catalog.custom_limits();
        // A screen reader announces the title first: it says at once that the form came back.
        let title = if errors.any() {
            "Error: Top up TikTok coins"
        } else {
            "Top up TikTok coins"
        };
        CatalogPage {
            live,
            meta: state.meta(title, csrf),
            currency: currency.code().into(),
            currencies,
            price_currency: currency,
            methods,
            custom_min: min.to_string(),
            custom_max: max.to_string(),
            custom_checked,
            custom_quote,
            min_age: state.settings.shop.min_age,
            values,
            errors,
        }
    }
}

/// Picks the currency the buyer asked for, if the shop offers it.
pub fn chosen_currency(catalog: &Catalog, asked: Option<&str>) -> Result<Currency, String> {
    match asked.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(catalog.base_currency()),
        Some(code) => code
            .parse::<Currency>()
            .ok()
            .filter(|c| catalog.supports(*c))
            .ok_or_else(|| "Choose one of the currencies in the list.".to_owned()),
    }
}

pub async fn show(
    state: web::Data<AppState>,
    csrf: CsrfToken,
    query: web::Query<CatalogQuery>,
) -> HttpResponse {
    let live = state.live.current();
    let mut errors = FieldErrors::default();
    let currency =
        chosen_currency(&live.catalog, query.currency.as_deref()).unwrap_or_else(|msg| {
            errors.currency = Some(msg);
            live.catalog.base_currency()
        });
    let values = CheckoutValues {
        coins: query.coins.clone().unwrap_or_default(),
        ..Default::default()
    };
    let status = if errors.any() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = CatalogPage::new(&state, live, &csrf.0, currency, values, errors);
    let status = if page.errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        status
    };
    render(status, &page)
}

/// Parses the amount from the form: a package, or a custom number of coins.
pub fn parse_amount(catalog: &Catalog, package: &str, coins: &str) -> Result<Coins, String> {
    let package = package.trim();
    if !package.is_empty() && package != "custom" {
        return catalog.parse_package(package).map_err(|e| e.to_string());
    }
    if package.is_empty() && coins.trim().is_empty() {
        return Err("Choose a package or enter a number of coins.".into());
    }
    catalog
        .parse_custom_amount(coins)
        .map_err(|e| e.to_string())
}
