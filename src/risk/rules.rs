//! The rules: pure functions from `Signals` and settings to reasons. Each reason carries its
//! points, a code, an optional forced decision and a sentence an agent can read as it is.

use super::settings::RiskSettings;
use super::signals::{Signals, Velocity};
use crate::domain::risk_list::List;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Review,
    Block,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Review => "review",
            Decision::Block => "block",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: String,
    pub points: u32,
    /// A decision this rule imposes whatever the score.
    pub force: Option<Decision>,
    pub sentence: String,
}

impl Reason {
    fn new(code: &str, points: u32, force: Option<Decision>, sentence: String) -> Self {
        Reason {
            code: code.into(),
            points,
            force,
            sentence,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    pub score: u32,
    pub decision: Decision,
    pub reasons: Vec<Reason>,
}

fn plural(n: u32, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn money(minor: i64) -> String {
    format!("{}", Decimal::new(minor, 2))
}

pub fn unrealistic_offer(s: &Signals, r: &RiskSettings) -> Option<Reason> {
    if s.reference_price_per_coin <= Decimal::ZERO {
        return None;
    }
    let percent = (s.price_per_coin * Decimal::from(100) / s.reference_price_per_coin).round_dp(1);
    let u = &r.unrealistic_offer;
    let sentence = |what: &str| {
        format!(
            "Price per coin {} is {}% of the market rate {} ({what})",
            s.price_per_coin.normalize(),
            percent.normalize(),
            s.reference_price_per_coin.normalize()
        )
    };
    if percent < Decimal::from(u.block_below_percent) {
        Some(Reason::new(
            "unrealistic_offer",
            100,
            Some(Decision::Block),
            sentence(&format!("block below {}%", u.block_below_percent)),
        ))
    } else if percent < Decimal::from(u.review_below_percent) {
        Some(Reason::new(
            "unrealistic_offer",
            r.review_threshold,
            Some(Decision::Review),
            sentence(&format!("review below {}%", u.review_below_percent)),
        ))
    } else {
        None
    }
}

pub fn repeated_failed_payments(s: &Signals, r: &RiskSettings) -> Option<Reason> {
    let f = &r.repeated_failed_payments;
    let (n1, scope1) = s.failed_payments_1h.worst();
    let (n24, scope24) = s.failed_payments_24h.worst();
    let (force, n, scope, window) = if n1 >= f.block_at_1h {
        (Decision::Block, n1, scope1, "hour")
    } else if n24 >= f.block_at_24h {
        (Decision::Block, n24, scope24, "24 hours")
    } else if n1 >= f.review_at_1h {
        (Decision::Review, n1, scope1, "hour")
    } else if n24 >= f.review_at_24h {
        (Decision::Review, n24, scope24, "24 hours")
    } else {
        return None;
    };
    let points = if force == Decision::Block {
        100
    } else {
        r.review_threshold
    };
    let sentence = format!(
        "{} for {scope} in the last {window}",
        plural(n, "failed payment", "failed payments")
    );
    Some(Reason::new(
        "repeated_failed_payments",
        points,
        Some(force),
        sentence,
    ))
}

/// Distinct cards that failed for one email or one recipient: the mark of a tester working
/// through a list. Successful payments are not evidence, and the address counts apart.
pub fn card_testing(s: &Signals, r: &RiskSettings) -> Option<Reason> {
    let limit = r.card_testing.distinct_cards_1h;
    let f = &s.failed_cards_1h;
    let (n, scope) = if f.email >= f.username {
        (f.email, "this email")
    } else {
        (f.username, "this TikTok username")
    };
    (n >= limit).then(|| {
        Reason::new(
            "card_testing",
            r.card_testing.points,
            None,
            format!(
                "{} failed for {scope} in the last hour (limit {limit})",
                plural(n, "different card", "different cards")
            ),
        )
    })
}

/// Many failed cards from the order's address. Carrier NAT, offices and universities put
/// thousands of strangers behind one address, so this adds points and never blocks alone.
pub fn address_failures(s: &Signals, r: &RiskSettings) -> Option<Reason> {
    let limit = r.card_testing.distinct_cards_1h;
    let n = s.failed_cards_1h.ip;
    (n >= limit && r.card_testing.address_points > 0).then(|| {
        Reason::new(
            "address_failures",
            r.card_testing.address_points.min(r.review_threshold.saturating_sub(1)),
            None,
            format!(
                "{} failed from this IP address in the last hour (shared addresses are common: a hint, not proof)",
                plural(n, "different card", "different cards")
            ),
        )
    })
}

/// A lost-card, stolen-card or fraud decline on this order, its email, recipient or cards.
pub fn fraud_decline(s: &Signals, r: &RiskSettings) -> Option<Reason> {
    let f = &r.fraud_decline;
    (s.fraud_declines_24h > 0).then(|| {
        Reason::new(
            "fraud_decline",
            f.points,
            f.review.then_some(Decision::Review),
            format!(
                "{} for this order, its email, its TikTok username or its cards in the last 24 hours",
                plural(
                    s.fraud_declines_24h,
                    "payment was declined as lost, stolen or fraudulent",
                    "payments were declined as lost, stolen or fraudulent"
                )
            ),
        )
    })
}

/// Many payers, one recipient: the shape of a cash-out. One payer buying for several accounts
/// (a parent for their children) is not a funnel.
pub fn recipient_funnel(s: &Signals, r: &RiskSettings) -> Option<Reason> {
    let f = &r.recipient_funnel;
    let x = &s.recipient;
    let (payers, amount, window) = if x.payers_1h >= f.review_payers_1h {
        (x.payers_1h, x.amount_1h_minor, "hour")
    } else if x.payers_24h >= f.review_payers_24h {
        (x.payers_24h, x.amount_24h_minor, "24 hours")
    } else {
        return None;
    };
    let span = s
        .recipient
        .span_minutes_1h
        .filter(|_| window == "hour")
        .map(|m| format!("in {}", plural(m.max(1), "minute", "minutes")))
        .unwrap_or_else(|| format!("in the last {window}"));
    // A forced hold, not points: added to other points it must not become a block, since the
    // earliest payers of a funnel and a family's gift look alike.
    Some(Reason::new(
        "recipient_funnel",
        0,
        Some(Decision::Review),
        format!(
            "{payers} different payers sent {} to this TikTok username {span}",
            money(amount)
        ),
    ))
}

/// The order shares what a wave of failures shares, and its payer is not known to the shop.
pub fn surge(s: &Signals, _: &RiskSettings) -> Option<Reason> {
    let m = s.surge.as_ref()?;
    if s.known_payer {
        return None;
    }
    // A forced hold, not points: sharing a trait with a wave is not evidence enough to refuse.
    Some(Reason::new(
        "surge",
        0,
        Some(Decision::Review),
        format!(
            "Failed payments are surging ({}); this order shares {} with them, from a payer the shop has not delivered to before",
            m.why, m.shares
        ),
    ))
}

/// Orders or amount per TikTok username or email in 24 hours. Not per address: strangers
/// share addresses.
pub fn velocity(s: &Signals, r: &RiskSettings) -> Option<Reason> {
    let v = &r.velocity;
    let max_amount = (v.max_amount_24h.0 * Decimal::from(100)).trunc();
    let over =
        |x: &Velocity| x.orders > v.max_orders_24h || Decimal::from(x.amount_minor) > max_amount;
    let scopes = [
        (&s.velocity_24h_username, "this TikTok username"),
        (&s.velocity_24h_email, "this email"),
    ];
    let (x, scope) = scopes.into_iter().find(|(x, _)| over(x))?;
    Some(Reason::new(
        "velocity",
        v.points,
        None,
        format!(
            "{} worth {} for {scope} in the last 24 hours (limits {} orders, {})",
            plural(x.orders, "order", "orders"),
            money(x.amount_minor),
            v.max_orders_24h,
            v.max_amount_24h.0.normalize()
        ),
    ))
}

pub fn large_first_order(s: &Signals, r: &RiskSettings) -> Option<Reason> {
    let l = &r.large_first_order;
    let limit = (l.amount.0 * Decimal::from(100)).trunc();
    (s.prior_paid_orders == 0 && Decimal::from(s.amount_base_minor) > limit).then(|| {
        Reason::new(
            "large_first_order",
            l.points,
            None,
            format!(
                "First order from this email, for {} (above {})",
                money(s.amount_base_minor),
                l.amount.0.normalize()
            ),
        )
    })
}

pub fn disposable_email(s: &Signals, r: &RiskSettings) -> Option<Reason> {
    s.disposable_email.then(|| {
        Reason::new(
            "disposable_email",
            r.disposable_email.points,
            None,
            "The email address is from a throwaway email service".into(),
        )
    })
}

pub fn price_mismatch(s: &Signals, r: &RiskSettings) -> Option<Reason> {
    s.price_mismatch.then(|| {
        Reason::new(
            "price_mismatch",
            r.price_mismatch.points,
            None,
            "The price or currency sent by the buyer's browser differs from the shop's price"
                .into(),
        )
    })
}

pub fn rate_limited(s: &Signals, r: &RiskSettings) -> Option<Reason> {
    let l = &r.rate_limited;
    (s.rate_limited_1h >= l.at_least).then(|| {
        Reason::new(
            "rate_limited",
            l.points,
            None,
            format!(
                "{} from this IP address in the last hour",
                plural(
                    s.rate_limited_1h,
                    "request was rate-limited",
                    "requests were rate-limited"
                )
            ),
        )
    })
}

/// Whether an allowed order should wait `risk.holdback.minutes` before crediting, with the
/// recipient looked at again then: a large order from a payer the shop has not delivered to.
pub fn holds_back(s: &Signals, r: &RiskSettings) -> bool {
    let h = &r.holdback;
    let limit = (h.amount.0 * Decimal::from(100)).trunc();
    h.minutes > 0 && !s.known_payer && Decimal::from(s.amount_base_minor) > limit
}

/// Every rule, in the order their reasons are listed.
/// A rule: reads the signals and the settings, and may give a reason.
pub type Rule = fn(&Signals, &RiskSettings) -> Option<Reason>;

pub const RULES: &[(&str, Rule)] = &[
    ("unrealistic_offer", unrealistic_offer),
    ("repeated_failed_payments", repeated_failed_payments),
    ("card_testing", card_testing),
    ("address_failures", address_failures),
    ("fraud_decline", fraud_decline),
    ("recipient_funnel", recipient_funnel),
    ("surge", surge),
    ("velocity", velocity),
    ("large_first_order", large_first_order),
    ("disposable_email", disposable_email),
    ("price_mismatch", price_mismatch),
    ("rate_limited", rate_limited),
];

/// Scores an order. The block list wins over everything; the allow list skips a score-based
/// review (never the block list, and never a decision a rule forces).
pub fn evaluate(s: &Signals, r: &RiskSettings) -> Assessment {
    let mut reasons: Vec<Reason> = Vec::new();
    for hit in s.list_hits.iter().filter(|h| h.list == List::Block) {
        reasons.push(Reason::new(
            "block_list",
            100,
            Some(Decision::Block),
            format!(
                "The {} {} is on the block list ({}, added by {})",
                hit.kind.describe(),
                hit.value,
                hit.reason,
                hit.added_by
            ),
        ));
    }
    reasons.extend(RULES.iter().filter_map(|(_, rule)| rule(s, r)));
    let score = reasons.iter().map(|x| x.points).sum::<u32>().min(100);
    let by_score = if score >= r.block_threshold {
        Decision::Block
    } else if score >= r.review_threshold {
        Decision::Review
    } else {
        Decision::Allow
    };
    let forced = reasons.iter().filter_map(|x| x.force).max();
    let mut decision = by_score.max(forced.unwrap_or(Decision::Allow));
    if decision == Decision::Review && forced != Some(Decision::Review) {
        if let Some(hit) = s.list_hits.iter().find(|h| h.list == List::Allow) {
            reasons.push(Reason::new(
                "allow_list",
                0,
                None,
                format!(
                    "The {} {} is on the allow list ({}), so the review was skipped",
                    hit.kind.describe(),
                    hit.value,
                    hit.reason
                ),
            ));
            decision = Decision::Allow;
        }
    }
    Assessment {
        score,
        decision,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::risk_list::{ListHit, ListKind};
    use crate::risk::signals::{FailedCards, PerScope, Recipient, SurgeMatch};
    use rust_decimal_macros::dec;

    fn clean() -> Signals {
        Signals {
            coins: 700,
            amount_base_minor: 728,
            price_per_coin: dec!(0.0104),
            reference_price_per_coin: dec!(0.0106),
            ..Default::default()
        }
    }

    fn settings() -> RiskSettings {
        RiskSettings::default()
    }

    #[test]
    fn a_clean_order_is_allowed_with_no_reasons() {
        let a = evaluate(&clean(), &settings());
        assert_eq!((a.score, a.decision), (0, Decision::Allow));
        assert!(a.reasons.is_empty());
    }

    #[test]
    fn unrealistic_offer_at_and_around_its_thresholds() {
        let r = settings();
        let at = |ppc| {
            unrealistic_offer(
                &Signals {
                    price_per_coin: ppc,
                    ..clean()
                },
                &r,
            )
            .and_then(|x| x.force)
        };
        // 75% of 0.0106 = 0.00795; 50% = 0.0053.
        assert_eq!(at(dec!(0.00796)), None, "just above the review line");
        assert_eq!(at(dec!(0.00795)), None, "exactly 75% is not below 75%");
        assert_eq!(at(dec!(0.00794)), Some(Decision::Review), "just below");
        assert_eq!(at(dec!(0.0053)), Some(Decision::Review), "exactly 50%");
        assert_eq!(at(dec!(0.00529)), Some(Decision::Block), "just below 50%");
        assert_eq!(
            at(dec!(0.00212)),
            Some(Decision::Block),
            "20% of the reference"
        );
        let reason = unrealistic_offer(
            &Signals {
                price_per_coin: dec!(0.00212),
                ..clean()
            },
            &r,
        )
        .unwrap();
        assert_eq!(
            reason.sentence,
            "Price per coin 0.00212 is 20% of the market rate 0.0106 (block below 50%)"
        );
    }

    #[test]
    fn repeated_failed_payments_at_and_around_its_thresholds() {
        let r = settings();
        let with = |h1: u32, h24: u32| {
            let s = Signals {
                failed_payments_1h: PerScope {
                    email: h1,
                    ..Default::default()
                },
                failed_payments_24h: PerScope {
                    email: h24.max(h1),
                    ..Default::default()
                },
                ..clean()
            };
            repeated_failed_payments(&s, &r).and_then(|x| x.force)
        };
        assert_eq!(with(2, 2), None);
        assert_eq!(with(3, 3), Some(Decision::Review));
        assert_eq!(with(4, 4), Some(Decision::Review));
        assert_eq!(with(5, 5), Some(Decision::Review));
        assert_eq!(with(6, 6), Some(Decision::Block));
        assert_eq!(
            with(0, 5),
            None,
            "5 in 24h is below the 24h review line of 6"
        );
        assert_eq!(with(0, 6), Some(Decision::Review));
        assert_eq!(with(0, 11), Some(Decision::Review));
        assert_eq!(with(0, 12), Some(Decision::Block));
        // Failures from the address do not count: strangers share addresses.
        let from_address = Signals {
            failed_payments_1h: PerScope {
                ip: 40,
                order: 1,
                ..Default::default()
            },
            ..clean()
        };
        assert_eq!(repeated_failed_payments(&from_address, &r), None);
        let s = Signals {
            failed_payments_1h: PerScope {
                email: 4,
                order: 1,
                ..Default::default()
            },
            ..clean()
        };
        assert_eq!(
            repeated_failed_payments(&s, &r).unwrap().sentence,
            "4 failed payments for this email in the last hour"
        );
    }

    #[test]
    fn card_testing_counts_failed_cards_per_email_and_recipient() {
        let r = settings();
        let with = |email, username, ip| {
            let s = Signals {
                failed_cards_1h: FailedCards {
                    email,
                    username,
                    ip,
                },
                ..clean()
            };
            (card_testing(&s, &r), evaluate(&s, &r).decision)
        };
        assert!(
            with(2, 2, 0).0.is_none(),
            "two failed cards: below the limit"
        );
        let (reason, decision) = with(3, 0, 0);
        assert_eq!(reason.unwrap().points, 80);
        assert_eq!(decision, Decision::Block);
        assert!(with(0, 3, 0)
            .0
            .unwrap()
            .sentence
            .starts_with("3 different cards failed for this TikTok username"));
        assert!(with(4, 1, 0)
            .0
            .unwrap()
            .sentence
            .starts_with("4 different cards failed for this email"));
    }

    #[test]
    fn an_address_alone_adds_points_and_never_blocks() {
        let r = settings();
        let s = |ip, limited| Signals {
            failed_cards_1h: FailedCards {
                ip,
                ..Default::default()
            },
            failed_payments_1h: PerScope {
                ip: ip * 3,
                ..Default::default()
            },
            failed_payments_24h: PerScope {
                ip: ip * 10,
                ..Default::default()
            },
            velocity_24h_ip: Velocity {
                orders: 5_000,
                amount_minor: 50_000_000,
            },
            rate_limited_1h: limited,
            ..clean()
        };
        assert!(address_failures(&s(2, 0), &r).is_none());
        assert_eq!(address_failures(&s(3, 0), &r).unwrap().points, 25);
        // A carrier NAT address with thousands of failures, orders and refusals behind it:
        // points, but not even a review by the address alone.
        let worst = evaluate(&s(5_000, 5_000), &r);
        assert_eq!(worst.decision, Decision::Allow, "{worst:?}");
        assert!(worst.score < r.review_threshold);
    }

    #[test]
    fn a_fraud_decline_holds_the_order() {
        let r = settings();
        assert!(fraud_decline(&clean(), &r).is_none());
        let s = Signals {
            fraud_declines_24h: 1,
            ..clean()
        };
        let a = evaluate(&s, &r);
        assert_eq!(a.decision, Decision::Review);
        assert!(a.reasons[0]
            .sentence
            .starts_with("1 payment was declined as lost, stolen"));
    }

    #[test]
    fn many_payers_to_one_recipient_are_held_and_one_payer_for_many_is_not() {
        let r = settings();
        let with = |payers_1h, payers_24h| Signals {
            recipient: Recipient {
                payers_1h,
                payers_24h,
                amount_1h_minor: 106_000,
                amount_24h_minor: 212_000,
                span_minutes_1h: Some(40),
            },
            ..clean()
        };
        // A parent paying for several children is one payer for each account.
        assert!(recipient_funnel(&with(1, 1), &r).is_none());
        let held = recipient_funnel(&with(6, 6), &r).unwrap();
        assert_eq!(held.force, Some(Decision::Review));
        assert_eq!(
            held.sentence,
            "6 different payers sent 1060.00 to this TikTok username in 40 minutes"
        );
        assert!(recipient_funnel(&with(2, 2), &r).is_some(), "2 in an hour");
        assert!(recipient_funnel(&with(1, 2), &r).is_none(), "2 in a day");
        let day = recipient_funnel(&with(1, 3), &r).unwrap();
        assert!(
            day.sentence.ends_with("in the last 24 hours"),
            "{}",
            day.sentence
        );
    }

    #[test]
    fn a_surge_holds_unknown_payers_only() {
        let r = settings();
        let m = SurgeMatch {
            shares: "card prefix 400000".into(),
            why: "40 cards failed in the last 10 minutes, against a usual 1".into(),
        };
        let stranger = Signals {
            surge: Some(m.clone()),
            ..clean()
        };
        assert_eq!(evaluate(&stranger, &r).decision, Decision::Review);
        // An email the attacker can type is no exemption…
        let typed = Signals {
            prior_paid_orders: 12,
            ..stranger.clone()
        };
        assert_eq!(evaluate(&typed, &r).decision, Decision::Review);
        // …a card that paid a delivered order with that email is.
        let known = Signals {
            known_payer: true,
            ..stranger
        };
        assert_eq!(evaluate(&known, &r).decision, Decision::Allow);
    }

    #[test]
    fn snapshots_from_before_the_new_signals_still_load() {
        let old = r#"{"coins":700,"amount_base_minor":728,"price_per_coin":"0.0104",
            "reference_price_per_coin":"0.0106","price_mismatch":false,"disposable_email":false,
            "failed_payments_1h":{"order":0,"email":0,"ip":4,"card":0,"username":0},
            "failed_payments_24h":{"order":0,"email":0,"ip":4,"card":0,"username":0},
            "distinct_cards_1h_ip":5,"distinct_cards_1h_email":1,
            "velocity_24h_username":{"orders":1,"amount_minor":728},
            "velocity_24h_email":{"orders":1,"amount_minor":728},
            "velocity_24h_ip":{"orders":9,"amount_minor":9000},
            "prior_paid_orders":0,"rate_limited_1h":0,"list_hits":[]}"#;
        let s: Signals = serde_json::from_str(old).unwrap();
        assert_eq!(s.failed_cards_1h, FailedCards::default());
        assert!(!s.known_payer && s.surge.is_none());
        // Cards that succeeded from one address no longer count as card testing.
        assert_eq!(evaluate(&s, &settings()).decision, Decision::Allow);
    }

    #[test]
    fn velocity_at_and_around_its_limits() {
        let r = settings();
        let with = |orders, amount_minor| {
            velocity(
                &Signals {
                    velocity_24h_email: Velocity {
                        orders,
                        amount_minor,
                    },
                    ..clean()
                },
                &r,
            )
        };
        assert!(
            with(10, 1000).is_none(),
            "10 orders is the limit, not over it"
        );
        assert!(with(11, 1000).is_some());
        assert!(with(1, 100_000).is_none(), "exactly 1000.00");
        assert!(with(1, 100_001).is_some());
        assert_eq!(with(11, 0).unwrap().points, 30);
    }

    #[test]
    fn large_first_order_at_and_around_its_limit() {
        let r = settings();
        let with = |amount, prior| {
            large_first_order(
                &Signals {
                    amount_base_minor: amount,
                    prior_paid_orders: prior,
                    ..clean()
                },
                &r,
            )
        };
        assert!(with(20_000, 0).is_none(), "exactly 200.00");
        assert!(with(20_001, 0).is_some());
        assert!(with(19_999, 0).is_none());
        assert!(with(50_000, 1).is_none(), "not a first order");
    }

    #[test]
    fn disposable_email_price_mismatch_and_rate_limits() {
        let r = settings();
        assert_eq!(
            disposable_email(
                &Signals {
                    disposable_email: true,
                    ..clean()
                },
                &r
            )
            .unwrap()
            .points,
            30
        );
        assert!(disposable_email(&clean(), &r).is_none());
        assert_eq!(
            price_mismatch(
                &Signals {
                    price_mismatch: true,
                    ..clean()
                },
                &r
            )
            .unwrap()
            .points,
            40
        );
        assert!(price_mismatch(&clean(), &r).is_none());
        assert!(rate_limited(
            &Signals {
                rate_limited_1h: 2,
                ..clean()
            },
            &r
        )
        .is_none());
        assert!(rate_limited(
            &Signals {
                rate_limited_1h: 3,
                ..clean()
            },
            &r
        )
        .is_some());
        assert!(rate_limited(
            &Signals {
                rate_limited_1h: 4,
                ..clean()
            },
            &r
        )
        .is_some());
    }

    #[test]
    fn thresholds_map_scores_to_decisions() {
        let mut r = settings();
        // disposable (30) + price mismatch (40) = 70: review (65), not block (75).
        let s = Signals {
            disposable_email: true,
            price_mismatch: true,
            ..clean()
        };
        let a = evaluate(&s, &r);
        assert_eq!((a.score, a.decision), (70, Decision::Review));
        r.block_threshold = 70;
        assert_eq!(
            evaluate(&s, &r).decision,
            Decision::Block,
            "at the block threshold"
        );
        r.block_threshold = 71;
        r.review_threshold = 71;
        assert_eq!(
            evaluate(&s, &r).decision,
            Decision::Allow,
            "just below the review threshold"
        );
    }

    fn hit(list: List) -> ListHit {
        ListHit {
            list,
            kind: ListKind::Email,
            value: "a@b.co".into(),
            reason: "known".into(),
            added_by: "agent@shop".into(),
        }
    }

    #[test]
    fn the_block_list_wins_and_the_allow_list_skips_only_score_reviews() {
        let r = settings();
        let blocked = evaluate(
            &Signals {
                list_hits: vec![hit(List::Block), hit(List::Allow)],
                ..clean()
            },
            &r,
        );
        assert_eq!(blocked.decision, Decision::Block);
        assert!(blocked.reasons[0].sentence.contains("block list"));

        let review = Signals {
            disposable_email: true,
            price_mismatch: true,
            list_hits: vec![hit(List::Allow)],
            ..clean()
        };
        let a = evaluate(&review, &r);
        assert_eq!(a.decision, Decision::Allow);
        assert!(a.reasons.iter().any(|x| x.code == "allow_list"));

        let forced = Signals {
            price_per_coin: dec!(0.007),
            list_hits: vec![hit(List::Allow)],
            ..clean()
        };
        assert_eq!(
            evaluate(&forced, &r).decision,
            Decision::Review,
            "a forced review stays"
        );
    }
}
