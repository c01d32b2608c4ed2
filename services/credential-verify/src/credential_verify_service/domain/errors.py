"""学历/证书核验错误: every refusal of credential-verify, with a stable code and a Chinese message.

Each error carries a stable `code` (``credential.*``), a Chinese `message` for the candidate, an
English `detail_en` for logs, and the HTTP `status` an entrypoint answers with (see
eventkit.errors.DomainError). Messages never reveal whether someone else's authorisation exists.
"""

from __future__ import annotations

from eventkit.errors import DomainError


class CredentialError(DomainError):
    """A credential-verify error the caller can act on."""

    code: str = "credential.error"


# --- online verification codes (在线验证码) ------------------------------------------------------


class VerificationCodeMalformed(CredentialError):
    """验证码格式不正确: not 16 characters of 0-9A-Z nor 12 digits; never sent to CHSI."""

    code = "credential.verification_code_malformed"
    status = 422

    def __init__(self, detail_en: str = "the verification code has the wrong shape") -> None:
        super().__init__(
            "在线验证码格式不正确：应为16位数字或大写字母，或12位数字，请核对后重新输入",
            detail_en,
        )


class VerificationCodeUnknown(CredentialError):
    """学信网没有这个验证码."""

    code = "credential.verification_code_unknown"
    status = 404

    def __init__(self, detail_en: str = "CHSI does not know the verification code") -> None:
        super().__init__("未查询到该在线验证码，请核对后重新输入", detail_en)


class VerificationCodeExpired(CredentialError):
    """验证码已过有效期."""

    code = "credential.verification_code_expired"
    status = 410

    def __init__(self, detail_en: str = "the verification code is past its valid_until") -> None:
        super().__init__("该在线验证码已过期，请在学信网重新申请验证码", detail_en)


# --- QR authorisations (学信网授权) ---------------------------------------------------------------


class AuthorizationNotFound(CredentialError):
    """授权不存在 (or belongs to another candidate: the two are indistinguishable on purpose)."""

    code = "credential.authorization_not_found"
    status = 404

    def __init__(self, detail_en: str = "no such authorisation for this candidate") -> None:
        super().__init__("未找到该授权记录，请重新获取学信网二维码", detail_en)


class AuthorizationExpired(CredentialError):
    """二维码已过期."""

    code = "credential.authorization_expired"
    status = 410

    def __init__(self, detail_en: str = "the authorisation expired undecided") -> None:
        super().__init__("学信网二维码已过期，请重新获取二维码并扫码授权", detail_en)


class AuthorizationAlreadyDecided(CredentialError):
    """授权已处理 (approved or denied before)."""

    code = "credential.authorization_already_decided"
    status = 409

    def __init__(self, detail_en: str = "the authorisation was already decided") -> None:
        super().__init__("该授权已处理，如需重新验证请重新获取学信网二维码", detail_en)


# --- records and certificates --------------------------------------------------------------------


class RecordHolderMismatch(CredentialError):
    """学历信息不是本人的: name or ID number differs from the candidate's."""

    code = "credential.record_holder_mismatch"
    status = 422

    def __init__(self, fields: tuple[str, ...] = ()) -> None:
        super().__init__(
            "学历信息中的姓名或身份证号与考生本人信息不一致，该学历不能使用",
            "record holder differs from the candidate in: " + (", ".join(fields) or "unknown"),
        )
        self.fields = fields


class RecordUnrecognised(CredentialError):
    """The provider's record holds a value the domain does not know (e.g. a new 层次)."""

    code = "credential.record_unrecognised"
    status = 502

    def __init__(self, detail_en: str) -> None:
        super().__init__("学信网返回的学历信息无法识别，请稍后再试或联系考办", detail_en)


class CertificateNumberMalformed(CredentialError):
    """证书编号格式不正确."""

    code = "credential.certificate_number_malformed"
    status = 422

    def __init__(self, detail_en: str = "the certificate number has the wrong shape") -> None:
        super().__init__("证书编号格式不正确，请核对证书上的编号后重新输入", detail_en)


# --- providers -----------------------------------------------------------------------------------


class ProviderUnavailable(CredentialError):
    """An external provider did not give a usable answer (timeout, 5xx, garbage, open circuit)."""

    code = "credential.provider_unavailable"
    status = 503
    retry_after: int | None = 30

    def __init__(self, message: str, detail_en: str, *, retry_after: int | None = None) -> None:
        super().__init__(message, detail_en)
        if retry_after is not None:
            self.retry_after = max(1, retry_after)


class ChsiUnavailable(ProviderUnavailable):
    """学信网暂时不可用."""

    code = "credential.chsi_unavailable"

    def __init__(
        self, detail_en: str = "CHSI is unavailable", *, retry_after: int | None = None
    ) -> None:
        super().__init__("学信网服务暂时不可用，请稍后再试", detail_en, retry_after=retry_after)


class NeeaUnavailable(ProviderUnavailable):
    """教育部教育考试院证书查询暂时不可用."""

    code = "credential.neea_unavailable"

    def __init__(
        self, detail_en: str = "NEEA is unavailable", *, retry_after: int | None = None
    ) -> None:
        super().__init__(
            "教育部教育考试院证书查询服务暂时不可用，请稍后再试",
            detail_en,
            retry_after=retry_after,
        )


# --- CHSI callbacks -------------------------------------------------------------------------------


class CallbackSignatureMalformed(CredentialError):
    """X-CHSI-Signature missing or not of the form ``t=<unix seconds>,v1=<hex>``."""

    code = "credential.callback_signature_malformed"
    status = 400

    def __init__(self, detail_en: str = "the callback signature header is malformed") -> None:
        super().__init__("回调签名格式不正确", detail_en)


class CallbackSignatureInvalid(CredentialError):
    """签名不匹配."""

    code = "credential.callback_signature_invalid"
    status = 401

    def __init__(self, detail_en: str = "the callback signature does not match") -> None:
        super().__init__("回调签名无效", detail_en)


class CallbackStale(CredentialError):
    """签名时间戳与当前时间相差过大 (a replay or a badly skewed clock)."""

    code = "credential.callback_stale"
    status = 401

    def __init__(self, detail_en: str = "the callback timestamp is outside the tolerance") -> None:
        super().__init__("回调已过期或时间戳无效", detail_en)


class CallbackMalformed(CredentialError):
    """A correctly signed callback whose body is not the documented shape."""

    code = "credential.callback_malformed"
    status = 400

    def __init__(self, detail_en: str = "the callback body does not match the protocol") -> None:
        super().__init__("回调内容格式不正确", detail_en)


class CandidateNotSynced(CredentialError):
    """The candidate's registration has not reached this service yet (seconds, normally)."""

    code = "credential.candidate_not_synced"
    status = 503
    retry_after = 5

    def __init__(self) -> None:
        super().__init__(
            "账户信息正在同步，请稍后再试", "the candidate's registration event has not arrived yet"
        )


class IdNumberNotYours(CredentialError):
    """The ID number given is not the signed-in candidate's."""

    code = "credential.id_number_not_yours"
    status = 422

    def __init__(self) -> None:
        super().__init__(
            "身份证号与您的账户信息不一致，只能核验本人的证书",
            "the ID number does not match the candidate's fingerprint",
        )
