//! A number of TikTok coins.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Coins(u64);

impl Coins {
    pub fn new(n: u64) -> Self {
        Coins(n)
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Coins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::money::group_thousands(&self.0.to_string()))
    }
}
