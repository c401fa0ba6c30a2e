//! Tests of the page model and its HTML, with exact expected values.
