// What a photo carries besides its samples, which amsnet denoise copies to its result: the Exif
// block (camera, exposure, date, GPS, orientation), the ICC colour profile and the XMP packet
// (ratings, keywords, an editor's settings). The result keeps
// the file's stored pixel orientation and the Exif its Orientation tag, so viewers turn the
// result as they turn the original, and a wide-gamut photo keeps its colours.
#pragma once
#include <string>
#include <vector>

namespace ams {

struct ImageMetadata {
    std::string exif;  // the TIFF-format block: what follows "Exif\0\0" in JPEG's APP1, PNG's eXIf
    std::string icc;   // the ICC profile, uncompressed
    std::string xmp;   // the XMP packet (UTF-8 XML): JPEG's APP1 after its namespace id, PNG's iTXt
    bool empty() const { return exif.empty() && icc.empty() && xmp.empty(); }
};

// From a JPEG (APP1 Exif; APP2 ICC_PROFILE segments, joined in sequence; APP1 XMP, not the
// extended XMP of packets over 64 KB) or a PNG (eXIf; iCCP, inflated; iTXt "XML:com.adobe.xmp",
// inflated when compressed); none for BMP, .npy or a file without. Malformed metadata (a profile missing a
// segment, a chunk cut short) is left out, never an error: the pixels are load_image's business.
ImageMetadata read_metadata(const std::string& path);

// Inserts meta into the encoded file `file` of extension ext holding `channels` samples a pixel
// (.jpg/.jpeg: APP1 Exif, the profile in APP2 segments and APP1 XMP, after the JFIF header; .png:
// iCCP, eXIf and an uncompressed iTXt after IHDR; .bmp and .npy: nothing). Returns what could not
// be stored ("" when all was, or nothing was asked): the format stores no metadata; an Exif block
// or XMP packet beyond what one JPEG segment holds; a profile of another colour space than the
// samples' (a grey photo's written as a 3-channel JPEG, a CMYK photo's).
std::string embed_metadata(std::vector<unsigned char>& file, const std::string& ext, const ImageMetadata& meta,
                           int channels = 3);
// Whether files of extension ext (lower case, with its dot) hold metadata at all: .jpg, .jpeg, .png.
bool stores_metadata(const std::string& ext);

}  // namespace ams
