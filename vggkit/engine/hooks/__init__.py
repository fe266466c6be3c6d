"""mmengine runner hooks of vggkit (registered by ``vggkit.engine._plugin``)."""
