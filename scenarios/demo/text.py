"""Words the demo prints, in English and in the article's Chinese."""

from __future__ import annotations

LANGS = ("en", "zh")

#: the article's part names (边车透传 / 出口网关, 宽松模式 / 策略模式)
MODES = {
    "disabled": {"en": "Egress disabled (the article's first test)", "zh": "测试"},
    "passthrough": {"en": "Sidecar passthrough", "zh": "边车透传"},
    "gateway": {"en": "Egress gateway", "zh": "出口网关"},
}
#: the summary matrix's name for state 0 (the article tests it before its two parts)
DISABLED_ROW = {"en": "Egress disabled", "zh": "禁用出口"}
POLICIES = {
    "permissive": {"en": "Permissive mode", "zh": "宽松模式"},
    "policy": {"en": "Policy mode", "zh": "策略模式"},
}

STRINGS: dict[str, dict[str, str]] = {
    "title": {
        "en": "egress-mesh: the osm-edge egress walkthrough",
        "zh": "egress-mesh:osm-edge 出口流量管理演示",
    },
    "backend": {"en": "backend", "zh": "后端"},
    "press_enter": {"en": "press Enter to run", "zh": "按回车键执行"},
    "stdin_closed": {"en": "stdin closed: continuing without pauses", "zh": "标准输入已关闭:不再暂停"},
    "building_images": {"en": "Building images", "zh": "构建镜像"},
    "loading_images": {"en": "Loading images into the cluster", "zh": "将镜像加载到集群"},
    "starting_cluster": {"en": "Starting the cluster", "zh": "启动集群"},
    "installing_mesh": {"en": "Installing the mesh (egress disabled)", "zh": "安装 osm-edge(禁用出口)"},
    "tearing_down": {"en": "Removing what the demo created", "zh": "清理演示创建的资源"},
    "kept": {"en": "--keep: the cluster and containers are left running", "zh": "--keep:保留集群和容器"},
    "running": {"en": "running", "zh": "执行中"},
    "waiting_on": {"en": "waiting on", "zh": "等待"},
    "passed": {"en": "passed", "zh": "通过"},
    "failed": {"en": "FAILED", "zh": "失败"},
    "skipped": {"en": "skipped", "zh": "跳过"},
    "expected": {"en": "expected", "zh": "预期"},
    "actual": {"en": "actual", "zh": "实际"},
    "look_further": {"en": "look further", "zh": "进一步排查"},
    "exit_code": {"en": "exit code", "zh": "退出码"},
    "stopping": {
        "en": "--stop-on-failure: stopping after the first failed step",
        "zh": "--stop-on-failure:首个失败后停止",
    },
    "summary": {"en": "Summary: what each mode lets through", "zh": "总结:各模式下的访问结果"},
    "mode": {"en": "mode", "zh": "模式"},
    "policy": {"en": "policy", "zh": "流量模式"},
    "logged": {"en": "logged by gateway", "zh": "经出口网关记录"},
    "not_logged": {"en": "not logged", "zh": "网关无记录"},
    "not_run": {"en": "not run", "zh": "未执行"},
    "article": {"en": "article", "zh": "文章"},
    "all_passed": {
        "en": "All steps passed: the article's results, reproduced.",
        "zh": "全部步骤通过:复现了文章的结果。",
    },
    "partial_passed": {
        "en": "All steps passed (not every part of the article ran).",
        "zh": "全部步骤通过(未执行文章的全部部分)。",
    },
    "some_failed": {"en": "{n} step(s) failed.", "zh": "{n} 个步骤失败。"},
    "differ": {"en": "{n} result(s) differ from the article.", "zh": "{n} 个结果与文章不符。"},
    "ran_on": {"en": "what the {backend} backend ran", "zh": "{backend} 后端实际执行的命令"},
    "setup": {"en": "Setup: images loaded, mesh installed", "zh": "准备:加载镜像,安装网格"},
    "report_written": {"en": "Report written to {path}", "zh": "报告已写入 {path}"},
    "scenario": {"en": "scenario", "zh": "场景"},
    "step": {"en": "step", "zh": "步骤"},
    "command": {"en": "command", "zh": "命令"},
    "output": {"en": "output", "zh": "输出"},
    "result": {"en": "result", "zh": "结果"},
    "duration": {"en": "duration", "zh": "耗时"},
    "traffic_paths": {"en": "Traffic paths", "zh": "流量路径"},
    "client_pod": {"en": "curl pod", "zh": "curl pod"},
    "sidecar": {"en": "sidecar", "zh": "sidecar"},
    "sidecar_no_listener": {"en": "sidecar (no outbound listener)", "zh": "sidecar(无出站监听)"},
    "gateway": {"en": "egress gateway", "zh": "出口网关"},
    "setup_step": {"en": "setup", "zh": "准备"},
}


def t(key: str, lang: str, **values: object) -> str:
    entry = STRINGS[key]
    return entry.get(lang, entry["en"]).format(**values)


def pick(texts: dict[str, str] | str | None, lang: str) -> str:
    """The ``lang`` text of a ``{en: ..., zh: ...}`` mapping, falling back to English."""
    if texts is None:
        return ""
    if isinstance(texts, str):
        return texts
    return texts.get(lang) or texts.get("en") or next(iter(texts.values()), "")
