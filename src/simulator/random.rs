//! The simulator's randomness: one small deterministic generator and a way to fold
//! numbers into a seed, so that generated traffic is a pure function of its inputs.

/// SplitMix64: tiny, fast, good enough for fake traffic, and no extra crate.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n); 0 when n is 0.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Poisson-distributed count: Knuth for small means, a rounded normal otherwise
    /// (exactness does not matter, only plausibility and determinism).
    pub(crate) fn poisson(&mut self, mean: f64) -> u32 {
        if mean.is_nan() || mean <= 0.0 {
            return 0;
        }
        if mean < 30.0 {
            let limit = (-mean).exp();
            let mut product = self.f64();
            let mut count = 0u32;
            while product > limit && count < 1_000 {
                product *= self.f64();
                count += 1;
            }
            count
        } else {
            // Box-Muller; 1 - f64() is in (0, 1], so ln() is finite.
            let u1 = 1.0 - self.f64();
            let u2 = self.f64();
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            (mean + z * mean.sqrt()).round().max(0.0) as u32
        }
    }
}

/// Folds several numbers into one well-mixed seed.
pub(crate) fn mix(parts: &[u64]) -> u64 {
    let mut acc = 0x243F_6A88_85A3_08D3u64;
    for &part in parts {
        acc = SplitMix64::new(acc ^ part).next_u64();
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prng_is_deterministic_and_uniformish() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut r = SplitMix64::new(1);
        let mean = (0..10_000).map(|_| r.f64()).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        let pmean = (0..5_000).map(|_| f64::from(r.poisson(4.0))).sum::<f64>() / 5_000.0;
        assert!((pmean - 4.0).abs() < 0.2, "{pmean}");
        let pbig = (0..5_000).map(|_| f64::from(r.poisson(100.0))).sum::<f64>() / 5_000.0;
        assert!((pbig - 100.0).abs() < 1.0, "{pbig}");
    }
}
