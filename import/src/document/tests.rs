use super::*;

/// One line per item: indentation, number, level, title, responsibility and line; then the
/// dropped lines, cut to their first 12 characters.
fn render(doc: &ParsedDocument) -> String {
    fn items(out: &mut String, list: &[DraftItem], depth: usize) {
        for item in list {
            out.push_str(&"  ".repeat(depth));
            out.push_str(&format!(
                "{} [{}] {}",
                item.number,
                item.level.label(),
                item.title
            ));
            if let Some(lead) = &item.lead_unit {
                out.push_str(&format!(" | lead={lead}"));
            }
            if let Some(leader) = &item.leader {
                out.push_str(&format!(" | leader={leader}"));
            }
            if !item.co_units.is_empty() {
                out.push_str(&format!(" | co={}", item.co_units.join("/")));
            }
            out.push_str(&format!(" @{}\n", item.line));
            items(out, &item.children, depth + 1);
        }
    }
    let mut out = String::new();
    if let Some(title) = &doc.title {
        out.push_str(&format!("title: {title}\n"));
    }
    items(&mut out, &doc.items, 0);
    for (line, text) in &doc.dropped_lines {
        let short: String = text.chars().take(12).collect();
        let more = if text.chars().count() > 12 { "…" } else { "" };
        out.push_str(&format!("dropped {line}: {short}{more}\n"));
    }
    out
}

fn check(input: &str, expected: &str) {
    let actual = match parse_document(input) {
        Ok(doc) => render(&doc),
        Err(e) => format!("error: {e:?}\n"),
    };
    let expected = expected.trim_start_matches('\n');
    if actual.trim_end() != expected.trim_end() {
        panic!("\n--- expected\n{expected}\n--- actual\n{actual}");
    }
}

const NOTICE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/samples/inspection-rectification-notice.txt"
));
const MINUTES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/samples/standing-meeting-minutes.txt"
));

// ---------------------------------------------------------------------------------------------
// The two real samples

#[test]
fn inspection_notice_sample() {
    // The notice starts on its second page: the measures 二是…四是 of a problem and the problems
    // (2)…(4) of a category printed on the first page stay at the top, with their own numbers.
    check(
        NOTICE,
        r#"
title: 关于十二届省委第二轮巡视集中整改进展情况的通报
二 [inline] 持续强化海洋科技创新 @7
三 [inline] 加速船舶海工科研成果转化和海洋生物医药产业能级扩容 @9
四 [inline] 全面提升涉海政策服务质效 @11
(2) [sub] 着力解决董家口港贸易港带动作用发挥不够问题 @13
  (2).一 [inline] 创新体制机制和业务模式 @14
  (2).二 [inline] 高效服务港航企业 @15
  (2).三 [inline] 加速推进世界一流港口建设 @16
(3) [sub] 着力解决自贸区没有发挥好示范引领作用问题 @17
  (3).一 [inline] 加速实施自贸试验区提升战略 @18
  (3).二 [inline] 推动外资项目扩量提质 @19
  (3).三 [inline] 高标准建设中德生态园 @23
  (3).四 [inline] 持续优化自贸片区营商环境 @25
(4) [sub] 着力解决全面深化改革的担当不够问题 @27
3 [point] 关于对"三新一高"发展理念把握不精准问题 @31
  3.(1) [sub] 着力解决推动实施稳经济政策不扎实问题 @33
    3.(1).一 [inline] 扎实落实稳经济政策 @34
    3.(1).二 [inline] 持续加大总部项目招引和培育力度 @35
    3.(1).三 [inline] 提升金融业发展服务水平 @37
    3.(1).四 [inline] 加快楼宇经济发展 @39
  3.(2) [sub] 着力解决打造乡村振兴齐鲁样板用力不足问题 @41
    3.(2).一 [inline] 创新指标体系,突破样板打造 @42
    3.(2).二 [inline] 创新龙头项目,突破产业融合 @44
    3.(2).三 [inline] 创新生态强村,突破乡村建设 @46
    3.(2).四 [inline] 创新三农队伍,突破人才振兴 @48
    3.(2).五 [inline] 创新乡风文明,突破文化振兴 @50
    3.(2).六 [inline] 创新综合改革,突破城乡融合 @52
    3.(2).七 [inline] 创新组织建设,突破治理融合 @54
  3.(3) [sub] 着力解决特色小镇主导产业优势不明显问题 @56
    3.(3).一 [inline] 做强特色小镇主导产业 @57
    3.(3).二 [inline] 持续加强农业品牌建设 @58
    3.(3).三 [inline] 加强海青茶产业标准化、品牌化建设 @60
    3.(3).四 [inline] 做大做强张家楼"油画小镇"品牌 @62
  3.(4) [sub] 着力解决生态文明建设成效不明显问题 @64
  3.(5) [sub] 着力解决大气环境质量没有得到有效改善问题 @70
    3.(5).一 [inline] 进一步优化提升大气环境质量 @71
    3.(5).二 [inline] 深入推进绿色低碳高质量发展 @73
4 [point] 关于以人民为中心的发展理念有关问题 @75
  4.(1) [sub] 着力解决群众"出行难"问题 @77
  4.(2) [sub] 着力解决政务服务环境有短板问题 @81
    4.(2).一 [inline] 深入开展"深化作风能力优化营商环境"专项行动 @82
    4.(2).二 [inline] 完善企业发展诉求信息化收集渠道和分级化解及闭环管理机制 @83
    4.(2).三 [inline] 加强企业登记全周期服务 @84
dropped 1: 中共青岛西海岸新区工委 …
dropped 5: (上接第一版)委员会20…
dropped 19: (175.)
dropped 21: 进公司"工作机制,挂图作…
dropped 29: 深化工委区委常委领衔推进…
dropped 66: 持续加强生态文明建设。坚…
dropped 68: 一反三、建章立制,出台《…
dropped 79: 全面梳理城市道路规划短板…
dropped 84: (下转第三版)
"#,
    );
}

#[test]
fn standing_meeting_minutes_sample() {
    // Topics 三, 四, 六, 七, 八 and 九 end with a decision that no numbered item follows: it is
    // assigned to the topic. The 一是 points under 会议强调 precede the decision and are not.
    check(
        MINUTES,
        r#"
一 [chapter] 《中华人民共和国反电信网络诈骗法》(2022年12月1日起实施)专题学法讲座 @5
  一.一 [inline] 加强学习培训 @7
  一.二 [inline] 强化宣传防范 @8
  一.三 [inline] 加大执法力度 @9
二 [chapter] 《关于<青岛西海岸新区深化新旧动能转换推动绿色低碳高质量发展三年行动计划(2023-2025年)>起草情况的汇报》(简称《行动计划》) @10
  二.(一) [section] 根据会议研究讨论意见,进一步修改完善《行动计划》,按程序报工委常委会研究 | lead=区发改局 @13
  二.(二) [section] 及时跟进国家各部委落实《意见》制定的各项政策措施,结合新区实际,研究相关配套政策并做好宣传解读,相关情况报新区管委(区政府)研究 | lead=区发改局 @14
三 [chapter] 《关于<创建自然资源节约集约示范区实施意见>起草情况的汇报》(简称《实施意见》) | lead=区自然资源局 @15
四 [chapter] 《关于<青岛西海岸新区预防性法治建设白皮书(2023年)>起草情况的汇报》(简称《白皮书》) | lead=区司法局 @18
  四.一 [inline] 强化思想认识 @20
  四.二 [inline] 压实工作责任 @21
  四.三 [inline] 突出重点领域 @22
五 [chapter] 《关于<青岛西海岸新区西岸前海湾区建设全国美丽海湾工作方案>起草情况的汇报》(简称《工作方案》) @24
  五.一 [inline] 理清职责,抓好落实 @26
  五.二 [inline] 加强调度,确保成效 @27
  五.三 [inline] 精心谋划,强化宣传 @28
  五.(一) [section] 周诚同志牵头,区生态环境分局负责 | lead=区生态环境分局 | leader=周诚 @30
    五.(一).1 [point] 根据美丽海湾建设指标任务,定期调度各责任单位的工作进展,相关情况报新区管委(区政府) | lead=区生态环境分局 | leader=周诚 @31
    五.(一).2 [point] 根据会议研究讨论意见,进一步修改完善《工作方案》,按程序印发实施 | lead=区生态环境分局 | leader=周诚 @32
  五.(二) [section] 严格执行“海上环卫”工作机制,全面做好海洋垃圾污染防治工作 | lead=区城管局 | co=各相关镇街 @33
  五.(三) [section] 统筹做好海洋牧场建设、海上养殖管理、涉海违法行为查处等工作 | lead=区海洋发展局、综合行政执法局 | co=相关单位 @34
六 [chapter] 《关于<青岛西海岸新区文化旅游品质提升三年行动方案(2023-2025年)>有关情况的汇报》(简称《行动方案》) | lead=区文旅局 @35
  六.一 [inline] 加大统筹协调力度,全力攻坚突破 @37
  六.二 [inline] 统筹旅游资源力量,全面提升品质 @38
七 [chapter] 《关于2023年度重点会展活动安排计划的汇报》(简称《安排计划》) | lead=区会展业发展促进中心 @40
八 [chapter] 《关于<支持民营经济发展培育壮大市场主体的71条措施)>起草情况的汇报》(简称《71条措施》) | lead=区优化营商环境办公室 @43
  八.一 [inline] 抓实抓好政策落地见效 @45
  八.二 [inline] 精准做好服务政策宣传解读 @46
  八.三 [inline] 加大扶持个体工商户发展力度 @47
九 [chapter] 《关于<青岛西海岸新区全国城市生活垃圾分类工作现场会筹备方案>起草情况的汇报》(简称《方案》) | lead=区城管局 | leader=夏鹏 @50
dropped 1: 会议时间:2023年2月…
dropped 2: 会议主持人:青岛西海岸新…
dropped 3: 会议出席人员:隋斌、邵睿…
dropped 4: 各功能区、各镇街负责人,…
dropped 6: 会议强调,惩处电信网络诈…
dropped 11: 会议原则同意汇报意见。强…
dropped 16: 会议原则同意汇报意见。强…
dropped 19: 会议原则同意汇报意见。强…
dropped 25: 会议原则同意汇报意见。强…
dropped 36: 会议原则同意汇报意见。强…
dropped 41: 会议原则同意汇报意见。强…
dropped 44: 会议原则同意汇报意见。强…
dropped 49: 市民代表列席政府常务会并…
dropped 51: 会议原则同意汇报意见。强…
dropped 53: 议题图文解读:
dropped 54: 议题媒体解读:
dropped 55: 议题视频解读:
"#,
    );
}

#[test]
fn sample_trees_count_per_level() {
    fn count(items: &[DraftItem], counts: &mut std::collections::BTreeMap<Level, usize>) {
        for item in items {
            *counts.entry(item.level).or_default() += 1;
            count(&item.children, counts);
        }
    }
    let mut notice = Default::default();
    count(&parse_document(NOTICE).unwrap().items, &mut notice);
    assert_eq!(
        notice.into_iter().collect::<Vec<_>>(),
        [(Level::Point, 2), (Level::Sub, 10), (Level::Inline, 30)]
    );
    let mut minutes = Default::default();
    count(&parse_document(MINUTES).unwrap().items, &mut minutes);
    assert_eq!(
        minutes.into_iter().collect::<Vec<_>>(),
        [
            (Level::Chapter, 9),
            (Level::Section, 5),
            (Level::Point, 2),
            (Level::Inline, 14)
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Numbering levels

#[test]
fn all_six_levels_nest_in_order() {
    check(
        "一、总体要求\n(一)组织领导\n1.成立专班\n(1)明确分工\n①制定清单\n一是建立台账。二是定期调度。",
        r#"
一 [chapter] 总体要求 @1
  一.(一) [section] 组织领导 @2
    一.(一).1 [point] 成立专班 @3
      一.(一).1.(1) [sub] 明确分工 @4
        一.(一).1.(1).① [circled] 制定清单 @5
          一.(一).1.(1).①.一 [inline] 建立台账 @6
          一.(一).1.(1).①.二 [inline] 定期调度 @6
"#,
    );
}

#[test]
fn skipped_levels_attach_to_the_nearest_higher_heading() {
    check(
        "3.关于发展理念问题\n(1)着力解决稳经济政策不扎实问题\n一是落实政策。\n一、总体要求\n1.加强领导\n②细化任务\n(二)强化保障",
        r#"
3 [point] 关于发展理念问题 @1
  3.(1) [sub] 着力解决稳经济政策不扎实问题 @2
    3.(1).一 [inline] 落实政策 @3
一 [chapter] 总体要求 @4
  一.1 [point] 加强领导 @5
    一.1.② [circled] 细化任务 @6
  一.(二) [section] 强化保障 @7
"#,
    );
}

#[test]
fn full_width_and_half_width_forms() {
    check(
        "（一）全角括号\n１．全角数字\n2、顿号\n3．全角句点\n（1）全角小括号\n(2)半角小括号\n⑶带括号数字\n㈡带括号汉字\n⒋带点数字",
        r#"
(一) [section] 全角括号 @1
  (一).1 [point] 全角数字 @2
  (一).2 [point] 顿号 @3
  (一).3 [point] 全角句点 @4
    (一).3.(1) [sub] 全角小括号 @5
    (一).3.(2) [sub] 半角小括号 @6
    (一).3.(3) [sub] 带括号数字 @7
(二) [section] 带括号汉字 @8
  (二).4 [point] 带点数字 @9
"#,
    );
}

#[test]
fn multi_character_numerals() {
    check(
        "十一、第十一项\n十二、第十二项\n（十一）小项\n十一是第十一条措施。\n二十一、第二十一项\n一百零一、第一百零一项",
        r#"
十一 [chapter] 第十一项 @1
十二 [chapter] 第十二项 @2
  十二.(十一) [section] 小项 @3
    十二.(十一).十一 [inline] 第十一条措施 @4
二十一 [chapter] 第二十一项 @5
一百零一 [chapter] 第一百零一项 @6
"#,
    );
}

#[test]
fn numbers_in_running_text_are_not_headings() {
    check(
        "一、资金保障\n1.5亿元资金已拨付到位。\n一、二级公路改造全部完成。\n2023年完成全部任务。\n(2023年)安排如下\n共完成(1)项任务。(2)号文件已印发,涉及3.0版政策。\n12、13号楼已交付。\n三要素齐全。\n二、工作措施",
        r#"
一 [chapter] 资金保障 @1
二 [chapter] 工作措施 @9
dropped 2: 1.5亿元资金已拨付到位…
dropped 3: 一、二级公路改造全部完成…
dropped 4: 2023年完成全部任务。
dropped 5: (2023年)安排如下
dropped 6: 共完成(1)项任务。(2…
dropped 7: 12、13号楼已交付。
dropped 8: 三要素齐全。
"#,
    );
}

#[test]
fn headings_after_a_bullet() {
    check(
        "- (1)着力解决问题\n- 一是创新机制。\n• 二是优化服务。\n* 2.第二点",
        r#"
(1) [sub] 着力解决问题 @1
  (1).一 [inline] 创新机制 @2
  (1).二 [inline] 优化服务 @3
2 [point] 第二点 @4
"#,
    );
}

// ---------------------------------------------------------------------------------------------
// Inline measures

#[test]
fn inline_measures_each_on_their_own_line() {
    check(
        "(1)着力解决问题\n一要加强学习。组织培训。\n二要强化宣传。\n三是加大执法力度。",
        r#"
(1) [sub] 着力解决问题 @1
  (1).一 [inline] 加强学习 @2
  (1).二 [inline] 强化宣传 @3
  (1).三 [inline] 加大执法力度 @4
"#,
    );
}

#[test]
fn inline_measures_in_one_paragraph_are_split() {
    check(
        "(1)着力解决问题\n一是加强学习。组织开展培训2次。二是强化宣传;深入社区。三是加大执法力度。四是 完善机制。",
        r#"
(1) [sub] 着力解决问题 @1
  (1).一 [inline] 加强学习 @2
  (1).二 [inline] 强化宣传 @2
  (1).三 [inline] 加大执法力度 @2
  (1).四 [inline] 完善机制 @2
"#,
    );
}

#[test]
fn inline_yao_measures_in_one_paragraph_are_split() {
    check(
        "（一）强化宣传\n一要加强学习，组织培训；二要强化宣传。三要 加大执法力度。",
        r#"
(一) [section] 强化宣传 @1
  (一).一 [inline] 加强学习，组织培训 @2
  (一).二 [inline] 强化宣传 @2
  (一).三 [inline] 加大执法力度 @2
"#,
    );
}

#[test]
fn inline_measures_after_a_colon_or_commas() {
    check(
        "一、反诈宣传\n会议强调，要做好三方面工作：一是加强学习，二是强化宣传，三是加大执法力度。",
        r#"
一 [chapter] 反诈宣传 @1
  一.一 [inline] 加强学习 @2
  一.二 [inline] 强化宣传 @2
  一.三 [inline] 加大执法力度 @2
"#,
    );
}

#[test]
fn inline_measures_do_not_split_on_a_word_or_an_out_of_order_number() {
    // `唯一是` is not a mark (not after a sentence end), `三是` does not follow `一是`.
    check(
        "(1)着力解决问题\n一是建设全国唯一是国际中心的平台。三是不连续。",
        r#"
(1) [sub] 着力解决问题 @1
  (1).一 [inline] 建设全国唯一是国际中心的平台 @2
"#,
    );
}

#[test]
fn numbered_items_run_on_in_one_paragraph() {
    check(
        "一、议题\n(一)修改完善方案。(二)做好宣传解读。(四)不是下一项。",
        r#"
一 [chapter] 议题 @1
  一.(一) [section] 修改完善方案 @2
  一.(二) [section] 做好宣传解读 @2
"#,
    );
}

// ---------------------------------------------------------------------------------------------
// Titles and body text

#[test]
fn body_text_under_a_heading_is_not_an_item() {
    check(
        "(4)着力解决全面深化改革的担当不够问题\n\n深化改革机制,进一步压实责任。市级以上改革试点累计达140余项。\n(5)着力解决下一个问题",
        r#"
(4) [sub] 着力解决全面深化改革的担当不够问题 @1
(5) [sub] 着力解决下一个问题 @4
dropped 3: 深化改革机制,进一步压实…
"#,
    );
}

#[test]
fn titles_broken_over_lines_are_joined() {
    check(
        "(4)着力解决生态文明建设成效\n不明显问题\n持续加强生态文明建设。\n一是加强学习\n培训。要组织开展培训。\n二是推动外资项目扩量 提质。建 立机制\n\n进公司工作机制。",
        r#"
(4) [sub] 着力解决生态文明建设成效不明显问题 @1
  (4).一 [inline] 加强学习培训 @4
  (4).二 [inline] 推动外资项目扩量提质 @6
dropped 3: 持续加强生态文明建设。
dropped 8: 进公司工作机制。
"#,
    );
}

#[test]
fn a_measure_sentence_crosses_a_page_break_blank_line() {
    check(
        "(1)着力解决问题\n一是持续加强生态文明建设,坚持举\n\n一反三。建章立制。\n二是完善机制。",
        r#"
(1) [sub] 着力解决问题 @1
  (1).一 [inline] 持续加强生态文明建设,坚持举一反三 @2
  (1).二 [inline] 完善机制 @5
"#,
    );
}

#[test]
fn title_keeps_a_space_between_ascii_words_only() {
    check(
        "1.打造 Park Service 企业 服务平台 2.0 版。",
        r#"
1 [point] 打造Park Service企业服务平台2.0版 @1
"#,
    );
}

#[test]
fn a_heading_alone_on_its_line_takes_the_next_line_as_title() {
    check(
        "（一）\n加强组织领导\n（二）完善制度",
        r#"
(一) [section] 加强组织领导 @1
(二) [section] 完善制度 @3
"#,
    );
}

// ---------------------------------------------------------------------------------------------
// Meeting decisions

#[test]
fn decision_gives_the_lead_unit_until_a_higher_heading() {
    check(
        "一、议题一\n会议确定,区发改局负责:\n(一)修改完善方案。\n(二)做好宣传解读。\n二、议题二\n(一)做好保障。",
        r#"
一 [chapter] 议题一 @1
  一.(一) [section] 修改完善方案 | lead=区发改局 @3
  一.(二) [section] 做好宣传解读 | lead=区发改局 @4
二 [chapter] 议题二 @5
  二.(一) [section] 做好保障 @6
"#,
    );
}

#[test]
fn decision_with_leader_full_width_punctuation_ends_at_the_next_decision() {
    check(
        "三、议题三\n会议确定，周诚同志牵头，区生态环境分局负责：\n1.定期调度。\n会议确定，区财政局负责：\n2.保障资金。",
        r#"
三 [chapter] 议题三 @1
  三.1 [point] 定期调度 | lead=区生态环境分局 | leader=周诚 @3
  三.2 [point] 保障资金 | lead=区财政局 @5
"#,
    );
}

#[test]
fn decision_with_cooperating_units_and_no_items_goes_to_the_topic() {
    check(
        "四、议题四\n一是强化认识。\n会议确定，区城管局负责、各相关镇街配合，做好垃圾分类工作。\n五、议题五",
        r#"
四 [chapter] 议题四 | lead=区城管局 | co=各相关镇街 @1
  四.一 [inline] 强化认识 @2
五 [chapter] 议题五 @4
"#,
    );
}

#[test]
fn decision_and_items_in_one_paragraph() {
    check(
        "一、议题\n会议确定:区发改局负责:(一)修改完善方案。(二)做好宣传解读。",
        r#"
一 [chapter] 议题 @1
  一.(一) [section] 修改完善方案 | lead=区发改局 @2
  一.(二) [section] 做好宣传解读 | lead=区发改局 @2
"#,
    );
}

#[test]
fn a_bare_clause_line_is_a_decision() {
    check(
        "一、议题\n周诚同志牵头，区生态环境分局负责：\n1.定期调度。\n2.修改方案。",
        r#"
一 [chapter] 议题 @1
  一.1 [point] 定期调度 | lead=区生态环境分局 | leader=周诚 @3
  一.2 [point] 修改方案 | lead=区生态环境分局 | leader=周诚 @4
"#,
    );
}

#[test]
fn item_clauses_override_the_decision_and_pass_to_children() {
    check(
        "一、议题\n会议确定,区发改局负责:\n(一)由区财政局牵头,区审计局、区统计局配合,做好审计。\n1.开展自查。\n(二)明确专人负责,建立台账。\n(三)区海洋发展局、综合行政执法局负责,相关单位配合,统筹做好查处工作。",
        r#"
一 [chapter] 议题 @1
  一.(一) [section] 做好审计 | lead=区财政局 | co=区审计局/区统计局 @3
    一.(一).1 [point] 开展自查 | lead=区财政局 | co=区审计局/区统计局 @4
  一.(二) [section] 明确专人负责,建立台账 | lead=区发改局 @5
  一.(三) [section] 统筹做好查处工作 | lead=区海洋发展局、综合行政执法局 | co=相关单位 @6
"#,
    );
}

#[test]
fn a_decision_without_anyone_responsible_is_running_text() {
    check(
        "一、议题\n会议确定,根据会议研究讨论意见修改完善。",
        r#"
一 [chapter] 议题 @1
dropped 2: 会议确定,根据会议研究讨…
"#,
    );
}

// ---------------------------------------------------------------------------------------------
// Noise and the document title

#[test]
fn noise_lines_are_dropped_and_reported() {
    check(
        "中共某某区委 某某区人民政府\n2023年8月15日\n\n关于某某问题整改情况的通报\n（上接第一版）\n——————\n- 3 -\n(175.) 一、总体要求\n第3版\nwww.example.gov.cn\n二、工作措施(下转第二版)\n……",
        r#"
title: 关于某某问题整改情况的通报
一 [chapter] 总体要求 @8
二 [chapter] 工作措施 @11
dropped 1: 中共某某区委 某某区人民…
dropped 2: 2023年8月15日
dropped 5: （上接第一版）
dropped 6: ——————
dropped 7: - 3 -
dropped 8: (175.)
dropped 9: 第3版
dropped 10: www.example.…
dropped 11: (下转第二版)
dropped 12: ……
"#,
    );
}

#[test]
fn a_title_over_two_lines_is_joined() {
    check(
        "关于十二届省委第二轮巡视集中整改\n进展情况的通报\n一、总体情况",
        r#"
title: 关于十二届省委第二轮巡视集中整改进展情况的通报
一 [chapter] 总体情况 @3
"#,
    );
}

#[test]
fn crlf_and_lone_cr_line_endings_count_lines_like_an_editor() {
    check(
        "一、甲\r\n\r\n二、乙\r三、丙",
        r#"
一 [chapter] 甲 @1
二 [chapter] 乙 @3
三 [chapter] 丙 @4
"#,
    );
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn empty_input() {
    check("", "error: Empty");
    check(" \n\u{3000}\r\n\t\u{feff}", "error: Empty");
}

#[test]
fn only_noise_has_no_items() {
    check(
        "(上接第一版)\n——————\n2023年8月15日\n会议时间:2023年2月14日上午\n",
        "error: NoItems",
    );
}

#[test]
fn binary_content_reports_its_offset() {
    // "一、标题\n" is 13 bytes.
    check("一、标题\n\0PK\u{3}\u{4}", "error: Binary { offset: 13 }");
    check("一、标题\n\u{1b}[0m", "error: Binary { offset: 13 }");
    let mojibake = format!("一、标题\n{}", "\u{fffd}".repeat(20));
    check(&mojibake, "error: Binary { offset: 13 }");
    // A few replacement characters in real text are not binary.
    check("一、标题\u{fffd}", "一 [chapter] 标题\u{fffd} @1");
}

#[test]
fn input_over_the_size_limit() {
    let big = format!("一、标题\n{}", "a".repeat(MAX_INPUT_BYTES));
    check(
        &big,
        &format!(
            "error: TooLarge {{ bytes: {}, limit: 5242880 }}",
            MAX_INPUT_BYTES + 13
        ),
    );
    let exactly = format!("一、标题\n{}", "啊".repeat((MAX_INPUT_BYTES - 13) / 3));
    assert!(parse_document(&exactly).is_ok());
}

#[test]
fn error_messages_say_what_to_do() {
    let messages = [
        DocError::Empty.to_string(),
        DocError::TooLarge { bytes: 6, limit: 5 }.to_string(),
        DocError::NoItems.to_string(),
        DocError::Binary { offset: 3 }.to_string(),
    ];
    assert_eq!(
        messages,
        [
            "the document is empty: paste or upload the full text of the notice or minutes",
            "the document is 6 bytes, over the 5-byte limit: import it in parts, or only the \
             part that lists the items",
            "no numbered items (一、 (一) 1. (1) ① 一是) were found: check that this is a \
             rectification notice or meeting minutes and that its numbering survived the copy",
            "the input contains binary data at byte 3: save the document as plain UTF-8 text \
             (.txt) first; .docx, .pdf and .xlsx files cannot be read directly",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Serialised form

#[test]
fn serialised_form_is_stable() {
    let doc = parse_document("会议确定，区城管局负责、各相关镇街配合：\n（一）做好保障。").unwrap();
    assert_eq!(
        serde_json::to_string(&doc).unwrap(),
        r#"{"title":null,"items":[{"number":"(一)","title":"做好保障","level":"section","lead_unit":"区城管局","leader":null,"co_units":["各相关镇街"],"line":2,"children":[]}],"unknown_units":[],"dropped_lines":[]}"#
    );
}
