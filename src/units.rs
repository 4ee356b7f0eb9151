//! Sizes as people read them, in messages about downloads and long outputs.

/// `bytes` in B, KiB, MiB or GiB, one decimal.
pub fn human_size(bytes: u64) -> String {
    const K: f64 = 1024.0;
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (K * K * K)),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (K * K)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / K),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        use super::human_size;
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(548_105_171), "522.7 MiB");
        assert_eq!(human_size(1_363_148_800), "1.3 GiB");
    }
}
