"""The web console: sign-in, roles, the page shell, and every service's pages and API."""
