"""Prompt validation with the exact error shapes of ComfyUI's `execution.validate_prompt`.

The checks deliberately index the prompt the way ComfyUI does (`prompt[o_id]["class_type"]`,
`RETURN_TYPES[slot]`, ...), so that malformed graphs fail with the same Python exceptions
and therefore the same `exception_during_validation` payloads.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from atelier.testing.schema import CUSTOM_VALIDATED_INPUTS, JsonDict, NodeSchemas


class MalformedPrompt(Exception):
    """The prompt is shaped so badly that ComfyUI's handler itself crashes (plain 500)."""


@dataclass
class ValidationResult:
    ok: bool
    error: JsonDict | None
    good_outputs: list[str] = field(default_factory=list)
    node_errors: dict[str, JsonDict] = field(default_factory=dict)


def full_type_name(klass: type) -> str:
    module = klass.__module__
    if module == "builtins":
        return klass.__qualname__
    return f"{module}.{klass.__qualname__}"


def types_match(received: Any, expected: Any) -> bool:
    """`comfy_execution.validation.validate_node_input`, non-strict, with `*` as wildcard."""
    if received == "*" or expected == "*" or received == expected:
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in expected.split(",")}
    return bool(got & want)


def _error(kind: str, message: str, details: str, extra: JsonDict) -> JsonDict:
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def _prompt_error(kind: str, message: str, details: str) -> JsonDict:
    return _error(kind, message, details, {})


FileCheck = Callable[[Any], bool]


class _Validator:
    def __init__(self, prompt: dict[str, Any], schemas: NodeSchemas, file_exists: FileCheck):
        self.prompt = prompt
        self.schemas = schemas
        self.file_exists = file_exists
        self.validated: dict[str, tuple[bool, list[JsonDict], str]] = {}

    def validate_node(self, unique_id: str) -> tuple[bool, list[JsonDict], str]:
        if unique_id in self.validated:
            return self.validated[unique_id]
        inputs = self.prompt[unique_id]["inputs"]
        class_type = self.prompt[unique_id]["class_type"]
        custom = CUSTOM_VALIDATED_INPUTS.get(class_type, ())
        errors: list[JsonDict] = []
        valid = True
        for name in self.schemas.input_names(class_type):
            spec = self.schemas.input_spec(class_type, name)
            assert spec is not None
            input_type, category, options = spec
            info = [input_type, options]
            if name not in inputs:
                if category == "required":
                    errors.append(
                        _error(
                            "required_input_missing",
                            "Required input is missing",
                            name,
                            {"input_name": name},
                        )
                    )
                continue
            val = inputs[name]
            if isinstance(val, list):
                outcome = self._check_link(name, val, input_type, info, errors)
                if outcome is False:
                    valid = False
                continue
            error = self._check_literal(inputs, name, input_type, options, info, custom)
            if error is not None:
                errors.append(error)
        errors.extend(self._custom_validation(class_type, inputs, custom))
        result = (not errors and valid, errors, unique_id)
        self.validated[unique_id] = result
        return result

    def _check_link(
        self, name: str, val: list[Any], input_type: Any, info: list[Any], errors: list[JsonDict]
    ) -> bool | None:
        """Returns False when an upstream node is invalid, None otherwise."""
        if len(val) != 2:
            errors.append(
                _error(
                    "bad_linked_input",
                    "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                    name,
                    {"input_name": name, "input_config": info, "received_value": val},
                )
            )
            return None
        o_id = val[0]
        o_class_type = self.prompt[o_id]["class_type"]
        received_type = tuple(self.schemas.return_types(o_class_type))[val[1]]
        if not types_match(received_type, input_type):
            errors.append(
                _error(
                    "return_type_mismatch",
                    "Return type mismatch between linked nodes",
                    f"{name}, received_type({received_type}) mismatch input_type({input_type})",
                    {
                        "input_name": name,
                        "input_config": info,
                        "received_type": received_type,
                        "linked_node": val,
                    },
                )
            )
            return None
        try:
            ok, _, _ = self.validate_node(o_id)
        except Exception as ex:  # ComfyUI reports any inner failure as a node error
            reasons = [
                _error(
                    "exception_during_inner_validation",
                    "Exception when validating inner node",
                    str(ex),
                    {
                        "input_name": name,
                        "input_config": info,
                        "exception_message": str(ex),
                        "exception_type": full_type_name(type(ex)),
                        "traceback": traceback.format_tb(ex.__traceback__),
                        "linked_node": val,
                    },
                )
            ]
            self.validated[o_id] = (False, reasons, o_id)
            return False
        return False if ok is False else None

    def _check_literal(
        self,
        inputs: dict[str, Any],
        name: str,
        input_type: Any,
        options: JsonDict,
        info: list[Any],
        custom: tuple[str, ...],
    ) -> JsonDict | None:
        val = inputs[name]
        try:
            if isinstance(val, dict) and "__value__" in val:
                val = val["__value__"]
                inputs[name] = val
            if input_type == "INT":
                val = int(val)
            elif input_type == "FLOAT":
                val = float(val)
            elif input_type == "STRING":
                val = str(val)
            elif input_type == "BOOLEAN":
                val = bool(val)
            inputs[name] = val
        except Exception as ex:  # int()/float() failures become invalid_input_type
            return _error(
                "invalid_input_type",
                f"Failed to convert an input value to a {input_type} value",
                f"{name}, {val}, {ex}",
                {
                    "input_name": name,
                    "input_config": info,
                    "received_value": val,
                    "exception_message": str(ex),
                },
            )
        if name in custom:
            return None
        extra = {"input_name": name, "input_config": info, "received_value": val}
        if "min" in options and val < options["min"]:
            message = "Value {} smaller than min of {}".format(val, options["min"])
            return _error("value_smaller_than_min", message, name, extra)
        if "max" in options and val > options["max"]:
            message = "Value {} bigger than max of {}".format(val, options["max"])
            return _error("value_bigger_than_max", message, name, extra)
        if isinstance(input_type, list) and val not in input_type:
            if len(input_type) > 20:
                list_info = f"(list of length {len(input_type)})"
                extra["input_config"] = None
            else:
                list_info = str(input_type)
            return _error(
                "value_not_in_list",
                "Value not in list",
                f"{name}: '{val}' not in {list_info}",
                extra,
            )
        return None

    def _custom_validation(
        self, class_type: str, inputs: dict[str, Any], custom: tuple[str, ...]
    ) -> list[JsonDict]:
        errors: list[JsonDict] = []
        for name in custom:
            if name not in inputs:
                raise TypeError(
                    f"{class_type}.VALIDATE_INPUTS() missing 1 required positional argument:"
                    f" '{name}'"
                )
            value = inputs[name]
            # Links are not resolved at validation time: the check sees None.
            value = None if isinstance(value, list) else value
            if not self.file_exists(value):
                errors.append(
                    _error(
                        "custom_validation_failed",
                        "Custom validation failed for node",
                        f"{name} - Invalid image file: {value}",
                        {"input_name": name},
                    )
                )
        return errors


def _check_nodes(
    prompt: dict[str, Any], schemas: NodeSchemas, partial: Any
) -> tuple[JsonDict | None, list[str]]:
    outputs: list[str] = []
    for node_id, node in prompt.items():
        try:
            has_class = "class_type" in node
        except TypeError as ex:
            raise MalformedPrompt(str(ex)) from ex
        if not has_class:
            error = _prompt_error(
                "invalid_prompt",
                "Cannot execute because a node is missing the class_type property.",
                f"Node ID '#{node_id}'",
            )
            return error, []
        try:
            class_type = node["class_type"]
            known = class_type in schemas
        except TypeError as ex:
            raise MalformedPrompt(str(ex)) from ex
        if not known:
            error = _prompt_error(
                "invalid_prompt",
                f"Cannot execute because node {class_type} does not exist.",
                f"Node ID '#{node_id}'",
            )
            return error, []
        if schemas.is_output_node(class_type):
            try:
                selected = partial is None or node_id in partial
            except TypeError as ex:
                raise MalformedPrompt(str(ex)) from ex
            if selected:
                outputs.append(node_id)
    return None, outputs


def validate_prompt(
    prompt: Any, partial: Any, schemas: NodeSchemas, file_exists: FileCheck
) -> ValidationResult:
    """Validate (and coerce in place) an API-format prompt."""
    if not isinstance(prompt, dict):
        if isinstance(prompt, str | list) and not prompt:
            prompt = {}
        else:
            raise MalformedPrompt(f"prompt is a {type(prompt).__name__}")
    error, outputs = _check_nodes(prompt, schemas, partial)
    if error is not None:
        return ValidationResult(False, error)
    if not outputs:
        return ValidationResult(
            False, _prompt_error("prompt_no_outputs", "Prompt has no outputs", "")
        )

    validator = _Validator(prompt, schemas, file_exists)
    good_outputs: list[str] = []
    failed: list[tuple[str, list[JsonDict]]] = []
    node_errors: dict[str, JsonDict] = {}
    for output_id in outputs:
        try:
            valid, reasons, _ = validator.validate_node(output_id)
        except Exception as ex:  # mirrors ComfyUI: the output is reported, not the server
            valid = False
            reasons = [
                _error(
                    "exception_during_validation",
                    "Exception when validating node",
                    str(ex),
                    {
                        "exception_type": full_type_name(type(ex)),
                        "traceback": traceback.format_tb(ex.__traceback__),
                    },
                )
            ]
            validator.validated[output_id] = (False, reasons, output_id)
        if valid is True:
            good_outputs.append(output_id)
            continue
        failed.append((output_id, reasons))
        # Every invalid node seen so far (not only this output's ancestors) is attributed
        # to this output, exactly like ComfyUI's loop over `validated`.
        for node_id, (node_valid, node_reasons, _) in validator.validated.items():
            if node_valid is True or not node_reasons:
                continue
            if node_id not in node_errors:
                node_errors[node_id] = {
                    "errors": node_reasons,
                    "dependent_outputs": [],
                    "class_type": prompt[node_id]["class_type"],
                }
            node_errors[node_id]["dependent_outputs"].append(output_id)

    if not good_outputs:
        lines = [f"{e['message']}: {e['details']}" for _, reasons in failed for e in reasons]
        error = _prompt_error(
            "prompt_outputs_failed_validation", "Prompt outputs failed validation", "\n".join(lines)
        )
        return ValidationResult(False, error, [], node_errors)
    return ValidationResult(True, None, good_outputs, node_errors)
