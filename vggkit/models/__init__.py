"""vggkit.models"""
