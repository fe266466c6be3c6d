"""mmengine runner hooks of vggkit (registered by the built-in plugin, :mod:`vggkit.builtins`)."""
