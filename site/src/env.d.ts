// Astro's client types (import.meta.env, asset imports) without needing `astro sync` first,
// so a fresh clone typechecks.
/// <reference types="astro/client" />
