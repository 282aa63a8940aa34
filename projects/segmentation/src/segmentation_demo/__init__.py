"""Dense prediction on images: each pixel of a picture of shapes gets its shape's class."""
