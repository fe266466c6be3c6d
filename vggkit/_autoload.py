"""Imported by mmengine when a config's ``default_scope`` is 'vggkit' (see
``registry._LOCATIONS``): loading the plugins here means configs never need
``custom_imports`` to find vggkit's or third-party components."""
from vggkit.plugins import load_plugins

load_plugins()
