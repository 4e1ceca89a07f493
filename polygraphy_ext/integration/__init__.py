"""How polygraphy-ext plugs into Polygraphy: the start-up hook (``hook.py``, installed as the top-level module
``_polygraphy_ext_hook``), the tools it registers (``registry.py``), the one table of every Polygraphy attribute
we touch (``table.py``) and one small module per patched Polygraphy class (``patches/``)."""
