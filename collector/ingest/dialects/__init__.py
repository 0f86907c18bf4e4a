"""Other products' ingestion APIs, one module each, so that their libraries send to
Telltale unchanged: `segment` (Segment's HTTP Tracking API and analytics.js, which
RudderStack's libraries speak too) and `posthog` (PostHog's capture API). Each turns its
requests into canonical items that `normalize` validates; `routes` is the table of the
paths each one answers. Adding a dialect is one module here and its rows in that table."""
