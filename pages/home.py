"""Home: what FeatureLens is, and the scenarios to explore."""

import streamlit as st

from pages._ui.resources import ROOT, get_scenarios
from pages._ui.presentation import no_presentation_here
from pages._ui.shell import ensure_app_shell

ensure_app_shell()
no_presentation_here()

st.title("FeatureLens")
st.markdown(
    """
**See what a vision model considers similar.** A convolutional network turns every patch of
an image into a long vector of numbers — its *features*. Two patches the network finds
similar have similar vectors. FeatureLens lets you look at those vectors: which channels
fire where, how the picture of the world changes from early layers (colours, edges) to late
layers (object parts, objects), and which regions of other images the model thinks look
alike. Point at a photo and every view lights up where the features are similar, following
the pointer; a click keeps the point.

Everything runs on your machine. The default model, **EfficientNet-Lite0** trained on
ImageNet, ships with the app, so no download is needed; pick another model in the sidebar.
"""
)

st.subheader("Scenarios")
for sc in get_scenarios().values():
    page_file = ROOT / "pages" / f"{sc.page}.py"
    if not page_file.exists():
        continue
    with st.container(border=True):
        st.page_link(f"pages/{sc.page}.py", label=f"**{sc.title}**", icon=":material/arrow_forward:")
        st.markdown(sc.lesson.summary)

st.subheader("How to read the views")
st.markdown(
    """
- **Layer**: a stage of the network. Its label, e.g. `stage 4 · 14×14×80`, says the feature
  grid is 14×14 cells and each cell is described by 80 numbers (channels).
- **Activation map**: how strongly one channel responds at each cell; bright = strong.
- **Similarity overlay**: bright where a location's feature vector points the same way as the
  reference's (the white ring); the colour bar or caption gives the range.
- **Colour scales**: *adaptive* stretches to the values in view (most contrast); *fixed* uses
  the metric's whole range, so colours mean the same in every image and layer.
- **Shareable views**: the address bar always holds the current view: copy it to share exactly
  what you see.
"""
)
