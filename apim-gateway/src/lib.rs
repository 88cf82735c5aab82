//! apim-gateway (skeleton).
