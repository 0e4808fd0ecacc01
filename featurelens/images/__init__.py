"""Images in: robust loading of anything a user hands us, and galleries (bundled photos,
plain folders, uploads).

>>> from featurelens.images import bundled_gallery
>>> bundled_gallery()[0].caption
'Chelsea the cat'
"""

from .domains import CROPS, DOMAINS, Crop, DomainImage, domain_shift_images, render_domain
from .wilds_sets import WildsImage, wilds_images
from .gallery import (IMAGE_EXTENSIONS, UPLOAD_MAX_SIDE, GalleryError, GalleryImage, UnknownImageIdError, UploadedImage,
                      bundled_gallery, folder_images, get_gallery_image, upload_to_image, uploaded_images)
from .loading import (DEFAULT_MAX_PIXELS, DISPLAY_PX, MIN_SIDE, ImageLoadError, ImageSource, display_image, load_image,
                      to_rgb_array, to_rgb_image)

__all__ = [
    "WildsImage", "wilds_images",
    "CROPS", "DOMAINS", "Crop", "DomainImage", "domain_shift_images", "render_domain",
    "DEFAULT_MAX_PIXELS", "DISPLAY_PX", "IMAGE_EXTENSIONS", "MIN_SIDE", "GalleryError", "GalleryImage", "ImageLoadError",
    "ImageSource", "UPLOAD_MAX_SIDE", "UnknownImageIdError", "UploadedImage", "bundled_gallery", "display_image", "folder_images", "get_gallery_image",
    "load_image", "to_rgb_array", "to_rgb_image", "upload_to_image", "uploaded_images",
]
