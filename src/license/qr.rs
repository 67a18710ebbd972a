//! QR codes of activation requests, as SVG, so an administrator can carry the request from an
//! air-gapped server to a phone without a file transfer.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// An SVG image of `text` (error correction level L: the request is up to ~1.5 KB).
pub fn svg(text: &str) -> Result<String, qrcode::types::QrError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L)?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(320, 320)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_compact_request_fits_in_a_qr_code() {
        let text = format!("ENCLAVE-AR1:{}", "A".repeat(1480));
        let image = super::svg(&text).expect("fits");
        assert!(image.contains("<svg"));
    }
}
