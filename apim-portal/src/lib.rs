//! apim-portal (skeleton).
