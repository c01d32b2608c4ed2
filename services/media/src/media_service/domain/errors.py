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


class MultipartInvalid(MediaError):
    """上传请求不是正确的表单."""

    code = "media.multipart_invalid"
    status = 400

    def __init__(self, detail_en: str) -> None:
        super().__init__("上传请求格式不正确，请通过页面重新选择照片上传", detail_en)


class PhotoFileMissing(MediaError):
    """表单里没有照片文件."""

    code = "media.file_missing"
    status = 422

    def __init__(self, detail_en: str = "the form has no file part named 'file'") -> None:
        super().__init__("请选择要上传的照片文件", detail_en)


class PhotoNotFound(MediaError):
    """照片不存在, 或者无权查看 (the two are not told apart)."""

    code = "media.not_found"
    status = 404

    def __init__(self) -> None:
        super().__init__("照片不存在或已删除", "no such photo, or it is not visible to the caller")


class PhotoPinned(MediaError):
    """照片已被提交的申请引用, 不能删除."""

    code = "media.pinned"
    status = 409

    def __init__(self, case_numbers: list[str] | None = None) -> None:
        cases = f"（办件编号：{'、'.join(case_numbers)}）" if case_numbers else ""
        super().__init__(
            f"该照片已用于已提交的免考申请{cases}，需留存备查，不能删除",
            "the photo is referenced by a submitted application and is kept for the audit",
        )


class PhotoInUse(MediaError):
    """照片正被免考申请中的证书引用, 不能删除."""

    code = "media.in_use"
    status = 409

    def __init__(self) -> None:
        super().__init__(
            "该照片正被免考申请中的证书使用，请先在申请中删除该证书，再删除照片",
            "a draft's certificate cites the photo; remove the certificate first",
        )


class StorageUnavailable(MediaError):
    """对象存储暂时不可用."""

    code = "media.storage_unavailable"
    status = 503
    retry_after = 30

    def __init__(self, detail_en: str, *, reached: bool = True) -> None:
        super().__init__("照片存储服务暂时不可用，请稍后再试", detail_en)
        # False when the request never reached storage (no connection): it wrote nothing.
        self.reached = reached


class UploadsBusy(MediaError):
    """同时处理的上传过多."""

    code = "media.busy"
    status = 503
    retry_after = 5

    def __init__(self) -> None:
        super().__init__(
            "当前上传人数较多，请稍后再试", "too many uploads are being processed at once"
        )


class QuotaExceeded(MediaError):
    """照片数量达到上限."""

    code = "media.quota_exceeded"
    status = 409

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"您已上传{limit}张照片，已达上限，请先删除不再使用的照片",
            f"the owner already has {limit} live photos",
        )
