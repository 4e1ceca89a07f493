"""One module per patched Polygraphy class or collection; each has ``apply(module)``, called by the start-up hook
(through ``integration.table.apply_for``) right after that Polygraphy module executed. Every one is idempotent."""
