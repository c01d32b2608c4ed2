"""证书照片错误: every refusal of an uploaded photo, with a stable code and a Chinese message."""

from __future__ import annotations

from eventkit.errors import DomainError


class MediaError(DomainError):
    """A refused photo (see eventkit.errors.DomainError)."""

    code: str = "media.error"


class EmptyPhoto(MediaError):
    """上传的文件为空."""

    code = "media.empty"
    status = 422

    def __init__(self) -> None:
        super().__init__("上传的文件为空，请重新选择照片", "the uploaded file is empty")


class PhotoTooLarge(MediaError):
    """文件超过大小上限."""

    code = "media.too_large"
    status = 413

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"照片文件不能超过{limit // (1024 * 1024)}MB",
            f"the file has {size} bytes, the limit is {limit}",
        )
        self.size = size
        self.limit = limit


class UnsupportedPhotoType(MediaError):
    """不是JPEG或PNG."""

    code = "media.unsupported_type"
    status = 415

    def __init__(self, detail_en: str = "the file is neither JPEG nor PNG") -> None:
        super().__init__("只支持JPG或PNG格式的照片", detail_en)


class CorruptPhoto(MediaError):
    """文件损坏或无法解码."""

    code = "media.corrupt"
    status = 422

    def __init__(self, detail_en: str = "the image cannot be decoded") -> None:
        super().__init__("照片文件已损坏或无法读取，请重新上传", detail_en)


class ResolutionTooLow(MediaError):
    """分辨率不足."""

    code = "media.resolution_too_low"
    status = 422

    def __init__(self, width: int, height: int) -> None:
        super().__init__(
            f"照片分辨率需大于800×600（当前为{width}×{height}）",
            f"the image is {width}x{height}; it must be larger than 800x600 in either orientation",
        )
        self.width = width
        self.height = height


class ImageTooLarge(MediaError):
    """像素过多 (解压炸弹)."""

    code = "media.image_too_large"
    status = 422

    def __init__(self, detail_en: str = "the image has too many pixels") -> None:
        super().__init__("照片像素过多，请压缩后重新上传", detail_en)
