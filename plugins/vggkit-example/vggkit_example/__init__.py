"""Template vggkit plugin."""
