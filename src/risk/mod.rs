//! Risk screening: facts about an order (`Signals`), pure rules over them, and decisions.

pub mod breaker;
pub mod settings;

pub use settings::RiskSettings;
