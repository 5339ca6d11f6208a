/*
 * imgdec.h -- decoding JPEG and PNG files to 8-bit RGB (the ImageNet-style
 * evaluation folder). PIL's convert("RGB") is the model: grey repeated over
 * three channels, alpha dropped, palettes expanded, CMYK converted.
 */
#ifndef ACQ_IMGDEC_H
#define ACQ_IMGDEC_H

#include <stddef.h>
#include <stdint.h>

typedef struct acq_image {
  uint8_t *pixels; /* height rows of width * 3 bytes, RGB; malloc'd */
  int width, height;
} acq_image;

/* PIL's limit against decompression bombs: it refuses images of more than
 * twice Image.MAX_IMAGE_PIXELS (89,478,485) pixels. */
#define ACQ_IMAGE_MAX_PIXELS 178956970ull

/* Decodes the bytes of a JPEG or PNG file (told apart by their signatures).
 * Images of more than max_pixels pixels (0: ACQ_IMAGE_MAX_PIXELS) are
 * refused from their header, before any pixel is decoded. On error writes a
 * one-line message into err and returns non-zero; nothing is allocated then. */
int acq_image_decode(const uint8_t *data, size_t n, uint64_t max_pixels, acq_image *img, char *err,
                     size_t errn);

/* Resizes 8-bit pixels (h rows of w * c bytes) to oh rows of ow * c bytes
 * into out exactly as PIL's Image.resize((ow, oh), Image.BILINEAR) does
 * (torchvision's Resize on PIL images). Returns non-zero when out of memory. */
int acq_resize_pil(const uint8_t *in, int w, int h, int c, uint8_t *out, int ow, int oh);

#endif /* ACQ_IMGDEC_H */
